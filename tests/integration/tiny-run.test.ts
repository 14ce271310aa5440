// The shipped default, configs/tiny.yaml, end to end through the real CLI, real gRPC and real
// worker processes with tiny models: images -> responses -> train -> evaluate -> report. A
// token in the orchestrator's environment reaches the workers but never the run's files
// (manifest, events, logs, dataset, report). That real workers reproduce a run byte for byte
// in new processes is checked by the replay in crash-resume.test.ts; the stage logic in
// detail by tests/stages with test workers.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RecordsRef } from "../../src/store/records.js";
import { cli, expectBestKept, filesUnder, jsonLines, readJson, ROOT, tempDir } from "../helpers.js";
import { imagePrompts } from "../support/records.js";

const SECRET = "hf_do_not_leak_4f7a9c";

interface Manifest {
  schema: string;
  status: string;
  stages: {
    images: { status: string; counts: Record<string, number>; records: RecordsRef };
    responses: { counts: Record<string, number>; dropped_images: Record<string, number> };
    train: { status: string; steps: number };
    evaluate: { status: string };
  };
  workers: Record<string, { info: { model: { weightsSha256: string; resolvedRevision: string } }; lifetimes: { starting_at: string; ready_at?: string; stopped_at?: string }[] }>;
  outputs: { adapter_sha256: string; eval: { benchmark: string; split: string; model: string; metrics: Record<string, number> }[] };
}

describe("orchestrate run configs/tiny.yaml", () => {
  // One whole tiny run: about 40 s alone on 2 cores, 65 to 140 s beside other test files, over
  // 200 s with one core busy elsewhere (its later workers load at a lower priority).
  it("every stage: manifest of every image and the kept one, dataset files, adapter, base vs trained POPE, report; no secret in any file", { timeout: 600_000 }, async () => {
    const store = tempDir();
    const r = await cli(["run", join(ROOT, "configs/tiny.yaml"), "--store", store, "--run-id", "r1"], { timeoutMs: 540_000, env: { HF_TOKEN: SECRET } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain("stage images succeeded");
    const runDir = join(store, "runs", "r1");
    expect(r.stdout.trim()).toBe(runDir);
    const m = readJson<Manifest>(join(runDir, "manifest.json"));
    expect(m.schema).toBe("pds-dpo/manifest@2");
    expect(m.status).toBe("succeeded");
    const prompts = imagePrompts(runDir, m);
    expect(prompts).toHaveLength(32);
    for (const p of prompts) {
      expectBestKept(p, [5, 7, 9, 11]);
      for (const c of p.candidates) expect(c.defects).toEqual([]);
      expect(existsSync(join(runDir, p.kept!.path))).toBe(true);
    }
    expect(readdirSync(join(runDir, "images"))).toHaveLength(32);
    expect(m.stages.images.counts).toMatchObject({ candidates: 128, generated: 128, scored: 128, kept: 32 });
    for (const w of ["sd", "pick", "llava-a", "llava-b", "rm", "dpo", "pope"]) {
      expect(m.workers[w]!.info.model.weightsSha256, w).toMatch(/^[0-9a-f]{64}$/);
      expect(m.workers[w]!.info.model.resolvedRevision, w).toMatch(/^tiny-v\d+$/);
    }

    // The response stage: both dataset files, every pair's image in the run directory, counts that add up.
    const pairs = readFileSync(join(runDir, "dataset/pairs.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; images: string[] });
    for (const p of pairs) expect(existsSync(join(runDir, p.images[0]!))).toBe(true);
    expect(readJson<unknown[]>(join(runDir, "dataset/llava.json"))).toHaveLength(pairs.length);
    expect(readFileSync(join(runDir, "dataset/README.md"), "utf8")).toContain("| pairs | ");
    const rs = m.stages.responses;
    expect(rs.counts.candidates).toBe(32 * 2 * 1);
    expect(rs.counts.answered).toBe(64);
    expect(pairs.length + Object.values(rs.dropped_images).reduce((x, y) => x + y, 0)).toBe(32);
    expect(rs.counts.pairs).toBe(pairs.length);

    // The train stage: the adapter, and the loss streamed as it trained.
    expect(m.outputs.adapter_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(join(runDir, "train/adapter/adapter_model.safetensors")).length).toBeGreaterThan(0);
    expect(existsSync(join(runDir, "train/adapter/adapter_config.json"))).toBe(true);
    expect(r.stderr).toMatch(/train step 4 loss=\d\.\d{4} margins=-?\d\.\d{4}/);
    const metrics = readFileSync(join(runDir, "train/metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(metrics.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    for (const x of metrics) expect(Number.isFinite(x.loss)).toBe(true);
    expect(m.stages.train.steps).toBe(4);

    // The evaluate stage: base and trained on the smoke-pope, two questions about each generated image the scorer did not keep
    // (96 of 128, less any within the overlap check's dHash distance of a training image).
    expect(m.outputs.eval.map((e) => `${e.benchmark}/${e.split}/${e.model}`)).toEqual(["smoke-pope/run/base", "smoke-pope/run/trained"]);
    const smoke = readFileSync(join(runDir, "eval/smoke-pope.questions.jsonl"), "utf8").trim().split("\n");
    expect(smoke.length).toBeGreaterThan(0);
    expect(smoke.length).toBeLessThanOrEqual(2 * 96);
    for (const e of m.outputs.eval) {
      expect(e.metrics.questions).toBe(smoke.length);
      expect(e.metrics.unparseable ?? 0).toBeLessThanOrEqual(smoke.length);
    }
    const summary = readFileSync(join(runDir, "eval/summary.md"), "utf8");
    expect(summary).toContain("| run | accuracy |");
    expect(summary).toContain("Smoke check: a smoke check built from this run's own generated images that the trainer never saw");

    // Every event was written to events.jsonl as it happened; the report was written.
    const events = jsonLines(readFileSync(join(runDir, "events.jsonl"), "utf8"));
    expect(events.filter((e) => e.type === "image.generated")).toHaveLength(128);
    expect(events.filter((e) => e.type === "train.step")).toHaveLength(4);
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "succeeded" });
    expect(readFileSync(join(runDir, "report/index.html"), "utf8")).toContain("training-curves");

    // Each worker stops once its last stage has ended: the image stage's before training starts.
    const at = (pred: (e: Record<string, unknown>) => boolean) => events.findIndex(pred);
    const trainStarts = at((e) => e.type === "stage.started" && e.stage === "train");
    for (const w of ["sd", "pick", "llava-a", "llava-b", "rm"]) {
      const stopped = at((e) => e.type === "worker.stopped" && e.worker === w);
      expect(stopped, w).toBeGreaterThan(0);
      expect(stopped, w).toBeLessThan(trainStarts);
    }
    // The manifest has each worker's start, ready and stop times, in that order; the report shows them.
    for (const [w, rec] of Object.entries(m.workers)) {
      expect(rec.lifetimes, w).toHaveLength(1);
      const l = rec.lifetimes[0]!;
      expect(Date.parse(l.starting_at) <= Date.parse(l.ready_at!) && Date.parse(l.ready_at!) <= Date.parse(l.stopped_at!), w).toBe(true);
    }
    expect(readFileSync(join(runDir, "report/index.html"), "utf8")).toMatch(/<table class="workers">.*<td>pick<\/td>/s);

    // HF_TOKEN never reaches the output, the manifest, events, logs, dataset or report.
    for (const text of [r.stdout, r.stderr]) expect(text).not.toContain(SECRET);
    const files = filesUnder(runDir);
    for (const f of ["manifest.json", "events.jsonl", "logs/sd.log", "logs/dpo.log", "report/index.html"]) expect(files).toContain(join(runDir, f));
    for (const f of files) expect(readFileSync(f).includes(SECRET), f).toBe(false);
  });
});
