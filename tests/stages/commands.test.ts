// `plan` (nothing runs) and `workers check` (each worker started, described and stopped)
// through the real CLI; `workers check` against test workers behind the remote runtime.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, ROOT, tempDir, writeTinyExperiment } from "../helpers.js";
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

describe("orchestrate validate", { timeout: 30_000 }, () => {
  it("the paper's config: exit 0 with a warning for each unpinned revision; a model type no worker loads: exit 2 naming the key", async () => {
    const ok = await cli(["validate", join(ROOT, "configs/pds-dpo-paper.yaml")]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/pds-dpo-paper\.yaml: ok \(8 workers, \d+ prompts, 9 warnings\)/);
    expect(ok.stderr).toContain("warning: workers.sd3.model.revision: 'main' is not a commit sha");
    const dir = tempDir();
    copyFileSync(join(ROOT, "configs/deepspeed-zero2.json"), join(dir, "deepspeed-zero2.json"));
    mkdirSync(join(dir, "prompts"));
    copyFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), join(dir, "prompts/tiny.jsonl"));
    const text = readFileSync(join(ROOT, "configs/pds-dpo-paper.yaml"), "utf8").replace("type: image-reward", "type: no-such-scorer");
    writeFileSync(join(dir, "paper.yaml"), text);
    const bad = await cli(["validate", join(dir, "paper.yaml")]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/workers\.imagereward\.model\.type: unknown image-scorer model type 'no-such-scorer' \(known: clip, image-reward\) \(line \d+\)/);
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
