// The image stage end to end through the real CLI, real gRPC and real worker processes.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, jsonLines, readJson, ROOT, tempDir, writeTinyExperiment } from "../helpers.js";

interface Candidate {
  id: string;
  guidance_scale: number;
  seed: number;
  sha256: string;
  score?: number;
  defects: string[];
}
interface PromptRecord {
  id: string;
  candidates: Candidate[];
  kept: { id: string; path: string; sha256: string; score: number } | null;
  dropped_reason?: string;
}
interface Manifest {
  schema: string;
  status: string;
  stages: { images: { status: string; counts: Record<string, number>; prompts: PromptRecord[] } };
  workers: Record<string, { info: { model: { weightsSha256: string } } }>;
}

async function runInto(config: string, store: string, extra: string[] = []) {
  const r = await cli(["run", config, "--store", store, "--run-id", "r1", ...extra]);
  const runDir = join(store, "runs", "r1");
  return { r, runDir, manifest: existsSync(join(runDir, "manifest.json")) ? readJson<Manifest>(join(runDir, "manifest.json")) : undefined };
}

describe("orchestrate run configs/tiny.yaml", () => {
  // Two whole tiny runs back to back: beside other test files on 2 cores they took 128 s to
  // over 180 s (the default timeout).
  it("every stage: manifest of every image and the kept one, dataset files, adapter, base vs trained POPE; same seed, separate stores: identical images, scores, pairs and adapter", async () => {
    const a = await runInto(join(ROOT, "configs/tiny.yaml"), tempDir());
    const b = await runInto(join(ROOT, "configs/tiny.yaml"), tempDir());
    expect(a.r.stderr).toContain("stage images succeeded");
    expect(a.r.exitCode).toBe(0);
    expect(b.r.exitCode).toBe(0);
    const m = a.manifest!;
    expect(m.schema).toBe("pds-dpo/manifest@1");
    expect(m.status).toBe("succeeded");
    const prompts = m.stages.images.prompts;
    expect(prompts).toHaveLength(32);
    for (const p of prompts) {
      expect(p.candidates.map((c) => c.guidance_scale)).toEqual([5, 7, 9, 11]);
      for (const c of p.candidates) {
        expect(c.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(typeof c.seed).toBe("number");
        expect(typeof c.score).toBe("number");
      }
      const best = Math.max(...p.candidates.map((c) => c.score!));
      expect(p.kept?.score).toBe(best);
      const kept = join(a.runDir, p.kept!.path);
      expect(existsSync(kept)).toBe(true);
      expect(p.kept!.path).toBe(`images/${p.id}.png`);
    }
    expect(readdirSync(join(a.runDir, "images"))).toHaveLength(32);
    expect(m.stages.images.counts).toMatchObject({ candidates: 128, generated: 128, scored: 128, kept: 32 });
    expect(m.workers.sd!.info.model.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
    // Reproducibility: byte-identical images and identical scores from a second store.
    const flat = (mm: Manifest) => mm.stages.images.prompts.flatMap((p) => p.candidates.map((c) => [c.id, c.seed, c.sha256, c.score]));
    expect(flat(b.manifest!)).toEqual(flat(m));
    for (const p of prompts) {
      expect(readFileSync(join(b.runDir, p.kept!.path)).equals(readFileSync(join(a.runDir, p.kept!.path)))).toBe(true);
    }
    // The response stage: both dataset files, every pair's image in the run directory, counts that add up.
    const pairsA = readFileSync(join(a.runDir, "dataset/pairs.jsonl"));
    expect(pairsA.equals(readFileSync(join(b.runDir, "dataset/pairs.jsonl")))).toBe(true);
    const pairs = pairsA.toString().trim().split("\n").map((l) => JSON.parse(l) as { id: string; images: string[]; chosen: unknown; rejected: unknown });
    for (const p of pairs) expect(existsSync(join(a.runDir, p.images[0]!))).toBe(true);
    const llava = readJson<unknown[]>(join(a.runDir, "dataset/llava.json"));
    expect(llava).toHaveLength(pairs.length);
    expect(readFileSync(join(a.runDir, "dataset/README.md"), "utf8")).toContain("| pairs | ");
    const rs = (m as unknown as { stages: { responses: { counts: Record<string, number>; dropped_images: Record<string, number> } } }).stages.responses;
    expect(rs.counts.candidates).toBe(32 * 2 * 1);
    expect(rs.counts.answered).toBe(64);
    const droppedImages = Object.values(rs.dropped_images).reduce((x, y) => x + y, 0);
    expect(pairs.length + droppedImages).toBe(32);
    expect(rs.counts.pairs).toBe(pairs.length);
    // The train stage: the same adapter bytes on CPU from the same seed; loss streamed as it trained.
    const outputs = (mm: Manifest) => (mm as unknown as { outputs: { adapter_sha256: string } }).outputs;
    expect(outputs(m).adapter_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(outputs(b.manifest!).adapter_sha256).toBe(outputs(m).adapter_sha256);
    expect(readFileSync(join(a.runDir, "train/adapter/adapter_model.safetensors")).length).toBeGreaterThan(0);
    expect(a.r.stderr).toMatch(/train step 4 loss=\d\.\d{4} margins=-?\d\.\d{4}/);
    const metrics = readFileSync(join(a.runDir, "train/metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(metrics.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    // The evaluate stage: base and trained on the POPE set built from the run's images.
    const evals = (m as unknown as { outputs: { eval: { benchmark: string; split: string; model: string; metrics: Record<string, number> }[] } }).outputs.eval;
    expect(evals.map((e) => `${e.benchmark}/${e.split}/${e.model}`)).toEqual(["pope/run/base", "pope/run/trained"]);
    for (const e of evals) {
      expect(e.metrics.questions).toBe(64);
      expect(e.metrics.unparseable! + e.metrics.yes_ratio! * 64).toBeLessThanOrEqual(64);
    }
    expect(readFileSync(join(a.runDir, "eval/summary.md"), "utf8")).toContain("| pope | run | accuracy |");
    // Every event was written to events.jsonl as it happened.
    const events = jsonLines(readFileSync(join(a.runDir, "events.jsonl"), "utf8"));
    expect(events.filter((e) => e.type === "image.generated")).toHaveLength(128);
    expect(events.filter((e) => e.type === "train.step")).toHaveLength(4);
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "succeeded" });
  }, 420_000);

  it("streams JSON event lines with --json", async () => {
    const dir = tempDir();
    const r = await cli(["run", writeTinyExperiment(dir, { limit: 1, scales: [5, 7] }), "--store", join(dir, "store"), "--json"]);
    expect(r.exitCode).toBe(0);
    const types = jsonLines(r.stdout).map((e) => e.type);
    expect(types[0]).toBe("run.started");
    expect(types).toContain("worker.ready");
    expect(types).toContain("stage.progress");
    expect(types.filter((t) => t === "image.scored")).toHaveLength(2);
    expect(types.at(-1)).toBe("run.finished");
  });
});

describe("defective images", () => {
  for (const [model, defect] of [
    ["sd-nan", "nan_pixels"],
    ["sd-black", "all_black"],
  ] as const) {
    it(`reports ${defect} images and never keeps them`, async () => {
      const dir = tempDir();
      const config = writeTinyExperiment(dir, { limit: 1, generatorModel: `{source: tiny, name: ${model}}` });
      const { r, manifest } = await runInto(config, join(dir, "store"));
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain(`defective image (${defect}), not kept`);
      const p = manifest!.stages.images.prompts[0]!;
      expect(p.candidates).toHaveLength(4);
      for (const c of p.candidates) {
        expect(c.defects).toEqual([defect]);
        expect(c.score).toBeUndefined();
      }
      expect(p.kept).toBeNull();
      expect(p.dropped_reason).toBe("no_valid_image");
      expect(manifest!.stages.images.counts).toMatchObject({ defective: 4, kept: 0, dropped: 1 });
    });
  }
});
