// Data-size sweeps through the real orchestrator with test workers: the images and responses
// stages run once; each (size, seed) point trains on its nested subset in train/<point>/ and is
// evaluated as its own variant beside the base (evaluated once); the manifest's sweep section
// pins each point and replay compares every one; a sweep whose trainer dies resumes at the
// unfinished point; a size the pairs cannot give is refused.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sha256 } from "../../src/store/cas.js";
import { cli, ROOT, tempDir, writeParquet } from "../helpers.js";
import { encodePng } from "../support/png.js";
import { Fleet, ofType, resumeIn, runIn, STAGE, TestRuntime, workers, writeExperiment } from "../support/fleet.js";

const ALL = ["sd", "pick", "a", "b", "rm", "dpo", "pope"];
const FIRST_PROMPT = (JSON.parse(readFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), "utf8").split("\n")[0]!) as { id: string }).id;

interface Point {
  name: string;
  size: number;
  seed: number;
  subset: { path: string; sha256: string; pairs: number };
  adapter: { path: string; sha256: string };
  steps: number;
}
interface Sweep {
  base: { benchmark: string; metrics: Record<string, number> }[];
  points: { name: string; size: number; seed: number; subset_sha256: string; adapter_sha256: string; metrics: { benchmark: string; metrics: Record<string, number> }[] }[];
}

const TRAIN = STAGE.train({ checkpoint_every: 1, optim: "{lr: 0.001, max_steps: 2, batch_size: 1}" });

/** A sweep over 4 prompts' pairs; without evaluate when `evaluate` is false. */
function writeSweep(dir: string, workersYaml: string, sizes: string, seeds: string, evaluate = true): string {
  const stages = [STAGE.images(), STAGE.responses(), TRAIN, ...(evaluate ? [STAGE.evaluate()] : [])].join("\n");
  return writeExperiment(dir, { workers: `sweep: {train.data_size: ${sizes}, seeds: ${seeds}}\n${workersYaml}`, prompts: 4, stages });
}

describe("data-size sweeps", { timeout: 60_000 }, () => {
  it("upstream once, one nested subset, adapter and evaluated variant a point, a sweep section in the manifest", async () => {
    const dir = tempDir("pdsdpo-sweep-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(ALL));
    try {
      const config = writeSweep(dir, fleet.yaml(), "[3, 1, 2]", "[1, 2]");
      // plan lists the points before anything runs.
      const plan = await cli(["plan", config, "--store", store]);
      expect(plan.exitCode, plan.stderr).toBe(0);
      expect(plan.stdout).toContain("stage train: max_steps=2 epochs=0 gpus=1 adapters=6");
      expect(plan.stdout).toContain("sweep: 6 points, each trained and evaluated as its own variant (the base once): n1-s1 (1 pairs, seed 1), n1-s2 (1 pairs, seed 2), n2-s1");
      const r = await runIn(config, store, { runId: "s1" });
      expect(r.status, String(r.error)).toBe("succeeded");
      const pairs = r.manifest.outputs.dataset!.pairs;
      expect(pairs).toBeGreaterThanOrEqual(3);
      // One image generation and one answer round for the whole sweep.
      expect(fleet.worker("a").calls).toHaveLength(1);
      expect(fleet.worker("b").calls).toHaveLength(1);
      expect(fleet.worker("dpo").calls).toHaveLength(6);

      const points = (r.manifest.stages.train as unknown as { points: Point[] }).points;
      expect(points.map((p) => p.name)).toEqual(["n1-s1", "n1-s2", "n2-s1", "n2-s2", "n3-s1", "n3-s2"]);
      const lines = (p: Point) => readFileSync(join(r.runDir, p.subset.path), "utf8").trim().split("\n");
      for (const p of points) {
        expect(p.subset.path).toBe(`train/${p.name}/pairs.jsonl`);
        expect(lines(p)).toHaveLength(p.size);
        expect(sha256(readFileSync(join(r.runDir, p.subset.path)))).toBe(p.subset.sha256);
        expect(p.adapter.path).toBe(`train/${p.name}/adapter/adapter_model.safetensors`);
        expect(sha256(readFileSync(join(r.runDir, p.adapter.path)))).toBe(p.adapter.sha256);
        expect(existsSync(join(r.runDir, "train", p.name, "metrics.jsonl"))).toBe(true);
        expect(existsSync(join(r.runDir, "train", p.name, "checkpoints", "checkpoint-2"))).toBe(true);
        expect(p.steps).toBe(2);
      }
      // Nested: a seed's smaller subset is the start of its larger one; the two seeds order the pairs differently somewhere.
      const of = (name: string) => points.find((p) => p.name === name)!;
      for (const seed of [1, 2]) {
        expect(lines(of(`n3-s${seed}`)).slice(0, 2)).toEqual(lines(of(`n2-s${seed}`)));
        expect(lines(of(`n2-s${seed}`)).slice(0, 1)).toEqual(lines(of(`n1-s${seed}`)));
      }
      expect(new Set(points.map((p) => p.adapter.sha256)).size).toBe(6);

      // Each point is its own variant; the base is evaluated once, first.
      const evals = r.manifest.outputs.eval as { benchmark: string; split: string; model: string }[];
      expect(evals.map((e) => e.model)).toEqual(["base", ...points.map((p) => p.name)]);
      expect(fleet.worker("pope").items).toEqual(["base", ...points.map((p) => join(r.runDir, "train", p.name, "adapter"))]);
      expect(readFileSync(join(r.runDir, "eval/summary.md"), "utf8")).toContain("n3-s2");

      // The manifest's sweep section: every point's hashes and metrics, the base's metrics.
      const sweep = (r.manifest as unknown as { sweep: Sweep }).sweep;
      expect(sweep.base.map((b) => b.benchmark)).toEqual([evals[0]!.benchmark]);
      expect(sweep.points.map((p) => [p.name, p.size, p.seed])).toEqual(points.map((p) => [p.name, p.size, p.seed]));
      for (const [i, p] of sweep.points.entries()) {
        expect(p.subset_sha256).toBe(points[i]!.subset.sha256);
        expect(p.adapter_sha256).toBe(points[i]!.adapter.sha256);
        expect(p.metrics[0]!.metrics.accuracy).toEqual(expect.any(Number));
      }
      // The report: Table 3 in eval/sweep.md and the HTML page, a plot per metric.
      const table = readFileSync(join(r.runDir, "eval/sweep.md"), "utf8");
      expect(table.split("\n").filter((l) => l.startsWith("| base") || /^\| [123] \|/.test(l))).toHaveLength(4);
      const html = readFileSync(join(r.runDir, "report/index.html"), "utf8");
      expect(html).toContain(`data-chart="sweep-${evals[0]!.benchmark}-${evals[0]!.split}-accuracy"`);
      // Training curves: each point's loss at each of its 2 steps.
      expect(html).toContain('data-chart="training-curves" data-points="12"');

      // A rerun on the same store: every point a cache hit, no training call.
      const again = await runIn(writeSweep(dir, fleet.yaml(), "[3, 1, 2]", "[1, 2]"), store, { runId: "s2" });
      expect(again.status, String(again.error)).toBe("succeeded");
      expect(fleet.worker("dpo").calls).toHaveLength(6);
      expect(again.manifest.stages.train!.cache).toMatchObject({ hits: 6, model_calls: 0 });
      expect((again.manifest as unknown as { sweep: Sweep }).sweep.points.map((p) => p.adapter_sha256)).toEqual(points.map((p) => p.adapter.sha256));

      // replay reruns every point (cache off) and compares each: the same; a point whose pinned subset differs is named.
      const manifestPath = join(r.runDir, "manifest.json");
      const same = await cli(["replay", manifestPath, "--store", store]);
      expect(same.exitCode, same.stderr).toBe(0);
      expect(fleet.worker("dpo").calls).toHaveLength(12);
      const changed = JSON.parse(readFileSync(manifestPath, "utf8")) as { stages: { train: { points: Point[] } } };
      changed.stages.train.points[3]!.subset.sha256 = "0".repeat(64);
      writeFileSync(join(dir, "changed.json"), JSON.stringify(changed));
      const diff = await cli(["replay", join(dir, "changed.json"), "--store", store]);
      expect(diff.exitCode).toBe(3);
      expect(diff.stderr.trim().split("\n").at(-1)).toMatch(/^error: replay s1-replay-\S+ differs from s1: first in stage train, item n2-s2 subset: sha256 000000000000 vs [0-9a-f]{12}/);
    } finally {
      await fleet.stop();
    }
  });

  it("a trainer that dies in the third point: resume reuses the two finished points and continues the third from its checkpoint", async () => {
    const dir = tempDir("pdsdpo-sweep-");
    const store = join(dir, "store");
    const defs = workers(["sd", "pick", "a", "b", "rm", "dpo"], { dpo: { faultsFor: () => ({ dieAfter: (call) => (call.index === 2 ? 1 : undefined) }) } });
    const runtime = new TestRuntime(defs);
    const config = writeSweep(dir, runtime.yaml(), "[1, 2, 3]", "[5]", false);
    const first = await runIn(config, store, { runId: "r1", runtime });
    expect(first.status).toBe("failed");
    expect(ofType(first.events, "train.finished").map((e) => e.point)).toEqual(["n1-s5", "n2-s5"]);
    expect(ofType(first.events, "train.checkpoint").filter((e) => e.point === "n3-s5").map((e) => e.step)).toEqual([1]);

    defs.dpo!.faultsFor = undefined;
    const again = new TestRuntime(defs);
    const resumed = await resumeIn(store, "r1", { runtime: again });
    expect(resumed.status, String(resumed.error)).toBe("succeeded");
    expect(again.started.map((s) => s.name)).toEqual(["dpo"]);
    // One training call: the third point's, from step 2; the first two came from the journal.
    expect(again.calls()).toBe(1);
    const fresh = resumed.events.slice(resumed.events.findIndex((e) => e.type === "run.started"));
    expect(ofType(fresh, "train.step").filter((e) => !e.cached).map((e) => [e.point, e.step])).toEqual([["n3-s5", 2]]);
    expect(resumed.manifest.stages.train!.cache).toMatchObject({ hits: 2, model_calls: 1 });
    const points = (resumed.manifest.stages.train as unknown as { points: Point[] }).points;
    expect(points.map((p) => [p.name, p.steps])).toEqual([["n1-s5", 2], ["n2-s5", 2], ["n3-s5", 2]]);
  });

  it("a sweep of a train-only experiment on TRL pairs in a parquet file: imported row by row, sizes checked at the train stage", async () => {
    const dir = tempDir("pdsdpo-sweep-");
    const store = join(dir, "store");
    mkdirSync(join(dir, "images"));
    const rows = ["q1", "q2", "q3"].map((id, i) => {
      writeFileSync(join(dir, "images", `${id}.png`), encodePng(2, 2, new Uint8Array(12).fill(i * 40)));
      return { id, images: [`images/${id}.png`], prompt: [{ role: "user", content: `What is ${id}?` }], chosen: [{ role: "assistant", content: "a cat" }], rejected: [{ role: "assistant", content: "a dog" }] };
    });
    await writeParquet({ [join(dir, "mine.parquet")]: rows });
    const fleet = await Fleet.start(store, workers(["dpo"]));
    try {
      const config = (sizes: string, file: string) => writeExperiment(dir, { file, workers: `sweep: {train.data_size: ${sizes}}\n${fleet.yaml()}`, stages: STAGE.train({ dataset: "mine.parquet", optim: "{lr: 0.001, max_steps: 1, batch_size: 1}" }) });
      const r = await runIn(config("[1, 3]", "ok.yaml"), store, { runId: "pq" });
      expect(r.status, String(r.error)).toBe("succeeded");
      const t = r.manifest.stages.train as unknown as { dataset: { pairs: number; source: { format: string } }; points: Point[] };
      expect(t.dataset).toMatchObject({ pairs: 3, source: { format: "trl" } });
      expect(t.points.map((p) => [p.name, p.subset.pairs])).toEqual([["n1-s11", 1], ["n3-s11", 3]]);
      // validate cannot count a parquet file's rows: the train stage refuses the size, before any training.
      const big = await runIn(config("[4]", "big.yaml"), store, { runId: "big" });
      expect(String(big.error)).toBe("StageFailedError: sweep.train.data_size: size 4 exceeds the 3 pairs in dataset/pairs.jsonl");
      expect(fleet.worker("dpo").calls).toHaveLength(2);
    } finally {
      await fleet.stop();
    }
  });

  it("refuses a size larger than the pairs: at validate when the prompts bound it, else at the train stage", async () => {
    const dir = tempDir("pdsdpo-sweep-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick", "a", "b", "rm", "dpo"]));
    try {
      // 4 prompts give at most 4 pairs.
      const tooLarge = writeSweep(dir, fleet.yaml(), "[2, 5]", "[1]", false);
      const err = await runIn(tooLarge, store, { runId: "v" }).catch((e: unknown) => e);
      expect(String(err)).toMatch(/sweep\.train\.data_size: size 5 exceeds the 4 pairs at most \(4 prompts, pairs_per_image 1\)/);
      const validate = await cli(["validate", tooLarge]);
      expect(validate.exitCode).toBe(2);
      expect(validate.stderr).toContain("sweep.train.data_size: size 5 exceeds the 4 pairs at most (4 prompts, pairs_per_image 1) (line 3)");
      // 4 is possible, but the first prompt's image gets no pair when both its answers are empty.
      for (const w of ["a", "b"]) fleet.worker(w).faults = { empty: (id) => id.startsWith(FIRST_PROMPT) };
      const r = await runIn(writeSweep(dir, fleet.yaml(), "[4]", "[1]", false), store, { runId: "t" });
      expect(r.status).toBe("failed");
      expect(String(r.error)).toMatch(/sweep\.train\.data_size: size 4 exceeds the \d pairs in dataset\/pairs\.jsonl$/);
      expect(fleet.worker("dpo").calls).toHaveLength(0);
    } finally {
      await fleet.stop();
    }
  });
});
