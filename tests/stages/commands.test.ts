// `plan` (nothing runs) and `workers check` (each worker started, described and stopped)
// through the real CLI; `workers check` against test workers behind the remote runtime.
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
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

describe("orchestrate plan: memory", { timeout: 30_000 }, () => {
  const paperCopy = (edit: (t: string) => string) => {
    const dir = tempDir();
    copyFileSync(join(ROOT, "configs/deepspeed-zero2.json"), join(dir, "deepspeed-zero2.json"));
    mkdirSync(join(dir, "prompts"));
    copyFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), join(dir, "prompts/tiny.jsonl"));
    cpSync(join(ROOT, "configs/benchmarks"), join(dir, "benchmarks"), { recursive: true });
    writeFileSync(join(dir, "paper.yaml"), edit(readFileSync(join(ROOT, "configs/pds-dpo-paper.yaml"), "utf8")));
    return join(dir, "paper.yaml");
  };
  // An empty HF cache: sizes come from the known table, never from whatever this machine has.
  const env = { HF_HUB_CACHE: "/nonexistent-hf-cache" };

  it("shows the memory per stage and device; with 40 GB declared it refuses what does not fit (exit 2), and spread over GPUs it fits", async () => {
    const shown = await cli(["plan", join(ROOT, "configs/pds-dpo-paper.yaml")], { env });
    expect(shown.exitCode, shown.stderr).toBe(0);
    // As shipped: 2 x 80 GB, the 13B responder and ArmoRM on the second GPU.
    expect(shown.stdout).toMatch(/^  responses cuda:1 +[\d.]+ of 80: llava-vicuna-13b [\d.]+, armorm [\d.]+/m);
    expect(shown.stdout).toMatch(/^  train +cuda:1 +[\d.]+ of 80: dpo [\d.]+$/m);

    // Everything on GPU 0, with 40 GB.
    const declared = (t: string) => t.replaceAll(", devices: [1]}", "}").replace("gpu_memory_gb: 80", "gpu_memory_gb: 40");
    const tight = await cli(["plan", paperCopy(declared)], { env });
    expect(tight.exitCode).toBe(2);
    expect(tight.stderr).toMatch(/gpu_memory_gb: does not fit: stage responses, cuda:0: llava-mistral-7b [\d.]+ \+ llava-vicuna-13b [\d.]+ \+ llava-vicuna-7b [\d.]+ \+ armorm [\d.]+ = [\d.]+ GB > gpu_memory_gb 40/);
    expect(tight.stdout).toMatch(/responses cuda:0 +[\d.]+ of 40:/);
    // `run` refuses it the same way before it makes anything or starts a worker.
    const store = tempDir();
    const run = await cli(["run", paperCopy(declared), "--store", store], { env });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("gpu_memory_gb: does not fit: stage responses, cuda:0:");
    expect(existsSync(join(store, "runs"))).toBe(false);

    const place = (worker: string, device: number) => (t: string) => t.replace(new RegExp(`(  ${worker}:\\n(?:    .*\\n)*?    runtime: \\{type: local, device: cuda)\\}`), `$1, devices: [${device}]}`);
    const spread = [place("llava-mistral-7b", 1), place("llava-vicuna-13b", 2), place("llava-vicuna-7b", 3)].reduce((t, f) => (x: string) => f(t(x)), declared);
    const fits = await cli(["plan", paperCopy(spread), "--json"], { env });
    expect(fits.exitCode, fits.stderr).toBe(0);
    const plan = JSON.parse(fits.stdout) as { memory: { problems: string[]; stages: { stage: string; devices: { device: string; gb: number }[] }[] } };
    expect(plan.memory.problems).toEqual([]);
    expect(plan.memory.stages.find((s) => s.stage === "responses")!.devices.map((d) => d.device)).toEqual(["cuda:0", "cuda:1", "cuda:2", "cuda:3"]);
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
