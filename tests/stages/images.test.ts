// The image stage through the real orchestrator, with test workers: the kept image is the best
// scored one and is placed in the run directory; defective images are reported and never kept;
// failed items are counted and the run goes on; min_score drops a prompt; the CLI streams
// JSON event lines with --json and prints warnings for defective images.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageDefect } from "../../src/gen/pdsdpo/v1/image_generator.js";
import type { Manifest } from "../../src/manifest/types.js";
import type { PromptRecord } from "../../src/pipeline/stages/images.js";
import { sha256 as sha256Of } from "../../src/store/cas.js";
import { decodePng } from "../../src/store/png.js";
import { cli, expectBestKept, jsonLines, tempDir } from "../helpers.js";
import { Fleet, ofType, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";
import { imagePrompts } from "../support/records.js";


describe("image stage", { timeout: 30_000 }, () => {
  const dir = tempDir("pdsdpo-images-");
  const store = join(dir, "store");
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await Fleet.start(store, workers(["sd", "pick"]));
  });
  afterAll(() => fleet.stop());
  const experiment = (stages = STAGE.images({ guidance_scales: "[5, 7, 9, 11]" }), prompts = 3) => writeExperiment(dir, { workers: fleet.yaml(), prompts, stages });

  it("generates every candidate once, keeps the best scored per prompt and places it in the run directory", async () => {
    fleet.heal();
    const generatedBefore = fleet.worker("sd").calls.length;
    const r = await runIn(experiment(), store, { runId: "best" });
    expect(r.status).toBe("succeeded");
    const prompts = imagePrompts(r.runDir, r.manifest);
    expect(prompts.map((p) => p.id)).toEqual(["art-001", "art-002", "industrial-001"]);
    for (const p of prompts) {
      expectBestKept(p, [5, 7, 9, 11]);
      // The kept file is the stored image (a hard link into the store, or a copy), a real PNG.
      const kept = readFileSync(join(r.runDir, p.kept!.path));
      expect(kept.equals(readFileSync(join(store, "cas", "sha256", p.kept!.sha256.slice(0, 2), p.kept!.sha256)))).toBe(true);
      expect(decodePng(kept)).toMatchObject({ width: 32, height: 32, channels: 3 });
    }
    expect(readdirSync(join(r.runDir, "images"))).toHaveLength(3);
    expect(r.manifest.stages.images!.counts).toMatchObject({ prompts: 3, candidates: 12, generated: 12, defective: 0, failed: 0, scored: 12, kept: 3, dropped: 0 });
    // Every image once, each announced with its artifact; then scored, then one selection per prompt.
    expect(ofType(r.events, "image.generated")).toHaveLength(12);
    expect(ofType(r.events, "image.scored")).toHaveLength(12);
    // One selection per prompt, announced as the prompt settles; the records are in prompt order.
    expect(ofType(r.events, "image.selected").map((e) => e.promptId).sort()).toEqual(["art-001", "art-002", "industrial-001"]);
    expect(prompts.map((p) => p.id)).toEqual(["art-001", "art-002", "industrial-001"]);
    expect(r.manifest.stages.images!.records).toMatchObject({ path: "records/images.jsonl", count: 3, sha256: sha256Of(readFileSync(join(r.runDir, "records", "images.jsonl"))) });
    expect(fleet.worker("sd").calls.slice(generatedBefore).flatMap((c) => c.ids).sort()).toEqual(prompts.flatMap((p) => p.candidates.map((c) => c.id)).sort());
    expect(r.manifest.workers.sd!.info).toMatchObject({ model: { weightsSha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect(r.manifest.outputs.kept_images).toEqual({ records: "records/images.jsonl", sha256: r.manifest.stages.images!.records!.sha256 });
    expect(prompts.filter((p) => p.kept).map((p) => p.id)).toEqual(["art-001", "art-002", "industrial-001"]);
    // The same seed in another store: the same images and scores.
    const other = join(dir, "other");
    fleet.store = other;
    try {
      const again = await runIn(experiment(), other, { runId: "again" });
      const flat = (ps: PromptRecord[]) => ps.flatMap((p) => p.candidates.map((c) => [c.id, c.seed, c.sha256, c.score]));
      expect(flat(imagePrompts(again.runDir, again.manifest))).toEqual(flat(prompts));
    } finally {
      fleet.store = store;
    }
  });

  it("failed items and unscored images are counted, never kept, and the run goes on; min_score drops a prompt", async () => {
    fleet.heal();
    // art-001: every image fails; art-002: one fails; industrial-001's best is under min_score.
    fleet.worker("sd").faults = { itemError: (id) => (id.startsWith("art-001") || id === "art-002.gs5.n0" ? { code: "generation_failed", message: "RuntimeError: boom" } : undefined) };
    fleet.worker("pick").faults = { itemError: (id) => (id === "art-002.gs9.n0" ? { code: "invalid_image", message: "cannot identify image file" } : undefined), score: (id) => (id.startsWith("industrial") ? 1 : undefined) };
    const scoredBefore = fleet.worker("pick").calls.length;
    // Cache off: the faults do not change the workers' fingerprints.
    const r = await runIn(experiment(STAGE.images({ min_score: 2 })), store, { runId: "failures", cache: "off" });
    fleet.heal();
    expect(r.status).toBe("succeeded");
    const [art1, art2, ind] = imagePrompts(r.runDir, r.manifest);
    expect(art1!.kept).toBeNull();
    expect(art1!.dropped_reason).toBe("no_valid_image");
    for (const c of art1!.candidates) expect(c.error).toEqual({ code: "generation_failed", message: "RuntimeError: boom" });
    expect(art2!.kept).toBeNull();
    expect(art2!.dropped_reason).toBe("no_valid_image");
    expect(art2!.candidates[1]!.error).toEqual({ code: "invalid_image", message: "cannot identify image file", deterministic: true });
    expect(ind!.kept).toBeNull();
    expect(ind!.dropped_reason).toBe("below_min_score");
    expect(r.manifest.stages.images!.counts).toMatchObject({ candidates: 6, generated: 3, failed: 4, scored: 2, kept: 0, dropped: 3 });
    expect(r.warnings).toContain("no prompt kept an image (see the manifest's dropped reasons)");
    // Only generated images were sent to the scorer.
    expect(fleet.worker("pick").calls.slice(scoredBefore).flatMap((c) => c.ids).sort()).toEqual(["art-002.gs9.n0", "industrial-001.gs5.n0", "industrial-001.gs9.n0"]);
  });

  it("a generator or scorer that ends its call without an item's result: that candidate fails (no_result) and the others are kept as usual", async () => {
    fleet.heal();
    fleet.worker("sd").faults = { omit: (id) => id === "art-001.gs5.n0" };
    fleet.worker("pick").faults = { omit: (id) => id === "art-002.gs5.n0" };
    const r = await runIn(experiment(STAGE.images({ guidance_scales: "[5, 7]" }), 2), store, { runId: "omitted", cache: "off" });
    fleet.heal();
    expect(r.status).toBe("succeeded");
    const [art1, art2] = imagePrompts(r.runDir, r.manifest);
    expect(art1!.candidates[0]!.error).toEqual({ code: "no_result", message: "sd ended its call without a result for this item" });
    expect(art1!.candidates[0]!.sha256).toBeUndefined();
    expect(art2!.candidates[0]!.error).toEqual({ code: "no_result", message: "pick ended its call without a result for this item" });
    // Each prompt keeps its other candidate.
    expect(art1!.kept?.id).toBe("art-001.gs7.n0");
    expect(art2!.kept?.id).toBe("art-002.gs7.n0");
    expect(r.manifest.stages.images!.counts).toMatchObject({ candidates: 4, generated: 3, failed: 2, scored: 2, kept: 2 });
  });

  it("the CLI: defective images are reported and never kept; --json streams every event as a JSON line", async () => {
    fleet.heal();
    fleet.worker("sd").faults = { defects: (id) => (id.startsWith("art-001") ? [ImageDefect.IMAGE_DEFECT_NAN_PIXELS] : id.startsWith("art-002") ? [ImageDefect.IMAGE_DEFECT_ALL_BLACK] : []) };
    // A store of its own: the faults do not change the worker's fingerprint, so its items must not meet the other tests' journal.
    const own = join(dir, "defects-store");
    fleet.store = own;
    try {
      const r = await cli(["run", experiment(undefined, 3), "--store", own, "--run-id", "defects"]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(join(own, "runs", "defects"));
      for (const scale of [5, 7, 9, 11]) {
        expect(r.stderr).toContain(`warning: art-001.gs${scale}.n0: defective image (nan_pixels), not kept`);
        expect(r.stderr).toContain(`warning: art-002.gs${scale}.n0: defective image (all_black), not kept`);
      }
      const m = JSON.parse(readFileSync(join(own, "runs", "defects", "manifest.json"), "utf8")) as Manifest;
      const [art1, art2, ind] = imagePrompts(join(own, "runs", "defects"), m);
      for (const [p, defect] of [
        [art1!, "nan_pixels"],
        [art2!, "all_black"],
      ] as const) {
        expect(p.candidates).toHaveLength(4);
        for (const c of p.candidates) {
          expect(c.defects).toEqual([defect]);
          expect(c.score).toBeUndefined();
        }
        expect(p.kept).toBeNull();
        expect(p.dropped_reason).toBe("no_valid_image");
      }
      expect(ind!.kept).not.toBeNull();
      expect(m.stages.images!.counts).toMatchObject({ defective: 8, kept: 1, dropped: 2 });
    } finally {
      fleet.heal();
      fleet.store = store;
    }

    const json = await cli(["run", experiment(STAGE.images({ guidance_scales: "[5, 7]" }), 1), "--store", store, "--run-id", "json", "--json"]);
    expect(json.exitCode).toBe(0);
    const events = jsonLines(json.stdout);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe("run.started");
    expect(types).toContain("worker.ready");
    expect(types).toContain("stage.progress");
    expect(types.filter((t) => t === "image.scored")).toHaveLength(2);
    expect(types.at(-1)).toBe("run.finished");
    // The same lines as events.jsonl.
    expect(events).toEqual(jsonLines(readFileSync(join(store, "runs", "json", "events.jsonl"), "utf8")));
  });

  it("the run directory has the manifest, events, logs, images and report", async () => {
    fleet.heal();
    const r = await runIn(experiment(STAGE.images(), 1), store, { runId: "layout" });
    for (const f of ["manifest.json", "events.jsonl", "images/art-001.png", "report/index.html", "report/diagnostics.json"]) expect(existsSync(join(r.runDir, f)), f).toBe(true);
    expect(statSync(join(r.runDir, "logs")).isDirectory()).toBe(true);
    expect(r.manifest).toMatchObject({ schema: "pds-dpo/manifest@2", status: "succeeded", run_id: "layout", cache: "use" });
    expect(r.events.at(-1)).toMatchObject({ type: "run.finished", status: "succeeded" });
  });
});
