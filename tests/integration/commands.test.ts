// `plan` and `workers check` through the real CLI.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, tempDir, writeTinyExperiment } from "../helpers.js";

describe("orchestrate plan", () => {
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

describe("orchestrate workers check", () => {
  it("starts each worker, prints its Describe and stops it", async () => {
    const dir = tempDir();
    const r = await cli(["workers", "check", writeTinyExperiment(dir), "--store", join(dir, "store")]);
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^sd: WORKER_KIND_IMAGE_GENERATOR sd \(StableDiffusionPipeline\) revision=tiny-v\d+ weights=[0-9a-f]{12} device=cpu:.* libs=.*diffusers=/);
    expect(lines[1]).toMatch(/^pick: WORKER_KIND_IMAGE_SCORER clip-scorer \(CLIPModel\) revision=tiny-v\d+/);
  });
});
