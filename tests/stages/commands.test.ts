// `plan` (nothing runs) and `workers check` (each worker started, described and stopped)
// through the real CLI; `workers check` against test workers behind the remote runtime.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, tempDir, writeTinyExperiment } from "../helpers.js";
import { Fleet, STAGE, workers, writeExperiment } from "../support/fleet.js";

describe("orchestrate plan", { timeout: 30_000 }, () => {
  it("lists stages, items with seeds and workers, and runs nothing", async () => {
    const dir = tempDir();
    const r = await cli(["plan", writeTinyExperiment(dir, { limit: 3 }), "--json"]);
    expect(r.exitCode).toBe(0);
    const plan = JSON.parse(r.stdout) as { stages: { images: { prompts: number; candidates: number } }; items: { id: string; seed: number }[]; workers: { name: string }[] };
    expect(plan.stages.images).toMatchObject({ prompts: 3, candidates: 12 });
    expect(plan.items[0]!.id).toBe("art-001.gs5.n0");
    expect(plan.workers.map((w) => w.name)).toEqual(["sd", "pick"]);
  });
});

describe("orchestrate workers check", { timeout: 30_000 }, () => {
  it("starts each worker, prints its Describe and stops it; no model is called", async () => {
    const dir = tempDir();
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick"]));
    try {
      const r = await cli(["workers", "check", writeExperiment(dir, { workers: fleet.yaml(), prompts: 1, stages: STAGE.images() }), "--store", store]);
      expect(r.exitCode, r.stderr).toBe(0);
      const lines = r.stdout.trim().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^sd: WORKER_KIND_IMAGE_GENERATOR sd \(TestImageGenerator\) revision=tiny-v1 weights=[0-9a-f]{12} device=cpu:test image=- libs=pds-dpo-test-worker=1$/);
      expect(lines[1]).toMatch(/^pick: WORKER_KIND_IMAGE_SCORER clip-scorer \(TestImageScorer\) revision=tiny-v1 weights=[0-9a-f]{12} /);
      expect(fleet.worker("sd").describes).toBeGreaterThan(0);
      expect(fleet.worker("pick").describes).toBeGreaterThan(0);
      expect(fleet.calls()).toBe(0);
    } finally {
      await fleet.stop();
    }
  });
});
