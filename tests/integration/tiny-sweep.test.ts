// configs/tiny-sweep.yaml end to end with real workers: three sizes, three adapters, three
// evaluated variants beside the base, the images and responses stages' model calls made once,
// Table 3 and its plots in eval/sweep.md and the report. Then the train-only
// experiments on that run's own dataset/llava.json and dataset/pairs.jsonl: each trains and
// evaluates with real workers (one trainer and one evaluator serve both; the second reuses the
// first's training from the journal: both files carry the same pairs).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sha256 } from "../../src/store/cas.js";
import { execa, type ResultPromise } from "execa";
import { parse } from "yaml";
import { WorkerSchema } from "../../src/config/schema.js";
import { localWorkerArgs } from "../../src/workers/local-args.js";
import { RUN_TOKEN_ENV } from "../../src/workers/runtime.js";
import { cli, readJson, ROOT, tempDir, TINY_WORKERS } from "../helpers.js";

const TOKEN = "tiny-sweep-test-token";

/** A real tiny worker serving on loopback with a token, as the orchestrator would start it; its endpoint once it listens. */
async function serve(name: string, store: string): Promise<{ endpoint: string; proc: ResultPromise }> {
  const config = WorkerSchema.parse(parse(TINY_WORKERS[name]!));
  const proc = execa(join(ROOT, ".venv/bin/python"), localWorkerArgs(config, { baseDir: ROOT, storeRoot: store, parentPid: process.pid }), { env: { [RUN_TOKEN_ENV]: TOKEN, HF_HUB_OFFLINE: "1" }, buffer: false, reject: false, stderr: "ignore" });
  const endpoint = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (c: Buffer) => {
      const found = /"address": "([^"]+)"/.exec(c.toString());
      if (found) resolve(found[1]!);
    });
    void proc.then((r) => reject(new Error(`worker ${name} exited before it listened (${String(r.exitCode)})`)));
  });
  return { endpoint, proc };
}

interface Manifest {
  status: string;
  stages: Record<string, { status: string; counts: Record<string, number>; cache?: { hits: number; computed: number; model_calls: number }; points?: { name: string; subset: { path: string; sha256: string }; adapter: { path: string; sha256: string } }[]; dataset?: { source: { format: string }; pairs: number } }>;
  workers: Record<string, { lifetimes: unknown[] }>;
  outputs: { eval: { model: string; metrics: Record<string, number> }[]; dataset?: { pairs: number } };
  sweep: { base: unknown[]; points: { name: string; size: number; subset_sha256: string; adapter_sha256: string; metrics: { metrics: Record<string, number> }[] }[] };
}

describe("orchestrate run configs/tiny-sweep.yaml", () => {
  // About 40 s beside other test files (seven worker starts), then two train-only runs sharing one trainer and one evaluator.
  it("three adapters and variants, upstream once, Table 3 and plots; train-only from its llava.json and pairs.jsonl", { timeout: 600_000 }, async () => {
    const store = tempDir("pdsdpo-sweep-");
    // One real trainer and one evaluator for the train-only runs below, loading while the sweep runs.
    const serving = Promise.all(["dpo", "pope"].map((w) => serve(w, store)));
    serving.catch(() => undefined); // awaited below; a worker that fails to start fails the test there
    try {
      const r = await cli(["run", join(ROOT, "configs/tiny-sweep.yaml"), "--store", store, "--run-id", "sweep"], { timeoutMs: 400_000 });
      expect(r.exitCode, r.stderr).toBe(0);
      const runDir = join(store, "runs", "sweep");
      const m = readJson<Manifest>(join(runDir, "manifest.json"));
      expect(m.status).toBe("succeeded");

      // The upstream stages ran once: 6 prompts x 2 guidance scales, each image generated and scored once; 2 answers an image.
      expect(m.stages.images!.counts).toMatchObject({ prompts: 6, candidates: 12, generated: 12, scored: 12 });
      expect(m.stages.images!.cache).toMatchObject({ hits: 0, computed: 24 });
      expect(m.stages.responses!.counts).toMatchObject({ answered: 12, scored: 12 });
      expect(m.stages.responses!.cache).toMatchObject({ hits: 0, computed: 24 });
      for (const w of ["sd", "pick", "llava-a", "llava-b", "rm"]) expect(m.workers[w]!.lifetimes, w).toHaveLength(1);

      // Three points, each its own subset, training and adapter; nested subsets.
      const points = m.stages.train!.points!;
      expect(points.map((p) => p.name)).toEqual(["n2-s1", "n3-s1", "n4-s1"]);
      expect(m.stages.train!.cache).toMatchObject({ computed: 3, model_calls: 3 });
      const lines = (p: (typeof points)[number]) => readFileSync(join(runDir, p.subset.path), "utf8").trim().split("\n");
      expect(lines(points[2]!).slice(0, 3)).toEqual(lines(points[1]!));
      expect(lines(points[1]!).slice(0, 2)).toEqual(lines(points[0]!));
      for (const p of points) expect(sha256(readFileSync(join(runDir, p.adapter.path)))).toBe(p.adapter.sha256);
      expect(new Set(points.map((p) => p.adapter.sha256)).size).toBe(3);

      // Four evaluated variants: the base once, then each point.
      expect(m.outputs.eval.map((e) => e.model)).toEqual(["base", "n2-s1", "n3-s1", "n4-s1"]);
      expect(m.sweep.points.map((p) => [p.name, p.size, p.adapter_sha256])).toEqual(points.map((p, i) => [p.name, i + 2, p.adapter.sha256]));
      for (const p of m.sweep.points) expect(p.metrics[0]!.metrics.accuracy).toEqual(expect.any(Number));

      // Table 3 and one plot per metric.
      const table = readFileSync(join(runDir, "eval/sweep.md"), "utf8").split("\n");
      expect(table[0]).toMatch(/^\| size \| seeds \| smoke-pope\/run accuracy \|/);
      expect(table.slice(2, 6).map((l) => l.split(" | ")[0])).toEqual(["| base", "| 2", "| 3", "| 4"]);
      const html = readFileSync(join(runDir, "report/index.html"), "utf8");
      expect(html).toContain("<h2>Data-size sweep</h2>");
      for (const metric of ["accuracy", "precision", "recall", "f1"]) expect(html).toContain(`data-chart="sweep-smoke-pope-run-${metric}" data-points="3"`);

      // Train-only experiments on this run's dataset files, evaluated on its smoke questions (images no training saw).
      // The trainer and evaluator started above serve both runs (the remote runtime), so they load once.
      const served = await serving;
      const dir = tempDir("pdsdpo-train-only-");
      const remote = (i: number) => `runtime: {type: remote, endpoints: ["${served[i]!.endpoint}"], token_env: ${RUN_TOKEN_ENV}}`;
      const trainOnly = (dataset: string) =>
        `name: from-run\nseed: 3\nworkers:\n  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava, seed: 1}, ${remote(0)}}\n  pope: {kind: evaluator, model: {source: tiny, name: llava, seed: 1}, ${remote(1)}}\nstages:\n` +
        `  train: {trainer: dpo, dataset: ${dataset}, lora: {r: 4, alpha: 8, dropout: 0.0}, dpo: {beta: 0.1}, optim: {lr: 0.001, max_steps: 1, batch_size: 1}}\n` +
        `  evaluate: {evaluator: pope, benchmarks: [{type: pope, name: pope, path: ${join(runDir, "eval/smoke-pope.questions.jsonl")}, image_root: ${runDir}}], max_new_tokens: 4}\n`;
      const pairs = m.outputs.dataset!.pairs;
      for (const [file, format, id] of [["llava.json", "llava", "from-llava"], ["pairs.jsonl", "trl", "from-trl"]] as const) {
        const config = join(dir, `${id}.yaml`);
        writeFileSync(config, trainOnly(join(runDir, "dataset", file)));
        const t = await cli(["run", config, "--store", store, "--run-id", id], { timeoutMs: 300_000, env: { [RUN_TOKEN_ENV]: TOKEN } });
        expect(t.exitCode, t.stderr).toBe(0);
        const tm = readJson<Manifest>(join(store, "runs", id, "manifest.json"));
        expect(Object.keys(tm.stages)).toEqual(["train", "evaluate"]);
        expect(tm.stages.train!.dataset).toMatchObject({ source: { format }, pairs });
        expect(tm.outputs.eval.map((e) => e.model)).toEqual(["base", "trained"]);
        expect(existsSync(join(store, "runs", id, "train/adapter/adapter_model.safetensors"))).toBe(true);
      }
      // The same pairs either way: the second training came from the journal.
      expect(readJson<Manifest>(join(store, "runs", "from-trl", "manifest.json")).stages.train!.cache).toMatchObject({ hits: 1, model_calls: 0 });
    } finally {
      // Whatever happened: the two workers stop (they would also stop with this process).
      for (const s of await serving.catch(() => [])) s.proc.kill("SIGTERM");
    }
  });
});
