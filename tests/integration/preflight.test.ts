// A worker that cannot work fails within seconds of its start, naming the worker and the
// model, before anything is loaded: a package its configuration needs is missing, or its hub
// weights are neither local nor in the HF cache and the hub cannot be reached.
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, LOCAL_CPU, ROOT, tempDir } from "../helpers.js";

function experiment(dir: string, workers: string, stages = ""): string {
  copyFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), join(dir, "prompts.jsonl"));
  writeFileSync(join(dir, "zero2.json"), JSON.stringify({ zero_optimization: { stage: 2 } }));
  const path = join(dir, "experiment.yaml");
  writeFileSync(
    path,
    // The workers under test first: `workers check` starts them in config order.
    `name: preflight
workers:
${workers}
  sd: {kind: image-generator, model: {source: tiny, name: sd}, ${LOCAL_CPU}}
  pick: {kind: image-scorer, model: {source: tiny, name: clip-scorer}, ${LOCAL_CPU}}
stages:
  images: {prompts: prompts.jsonl, limit: 1, generator: sd, scorer: pick, guidance_scales: [5], steps: 2, size: 32}
${stages}`,
  );
  return path;
}

describe("preflight", { timeout: 60_000 }, () => {
  it("a trainer whose config needs DeepSpeed fails before it loads anything when deepspeed is not installed", async () => {
    const dir = tempDir("pdsdpo-preflight-");
    const file = experiment(
      dir,
      `  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava, seed: 1}, ${LOCAL_CPU}}
  a: {kind: responder, model: {source: tiny, name: llava, seed: 1}, ${LOCAL_CPU}}
  rm: {kind: response-scorer, model: {source: tiny, name: reward}, ${LOCAL_CPU}}`,
      `  responses: {responders: [a], scorer: rm}
  train: {trainer: dpo, lora: {r: 4, alpha: 8}, dpo: {beta: 0.1}, optim: {lr: 0.001, max_steps: 1}, gpus: 2, deepspeed: zero2.json}
`,
    );
    // The test venv has no deepspeed (it is the CUDA trainer image's extra).
    const r = await cli(["workers", "check", file, "--store", join(dir, "store")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /worker 'dpo' \(dpo-trainer\) could not load its model tiny 'llava': missing package in \S+python\S*: deepspeed \(for DeepSpeed \(ZeRO\) training; pip install 'pds_dpo_workers\[deepspeed\]'\)/,
    );
    expect(r.stderr).not.toMatch(/Traceback/);
  });

  // Two worker starts, each spawned (its env differs from the orchestrator's, so no warm host):
  // about 10 s each alone, 25 s with a core busy.
  it("a hub model neither local nor in the HF cache, with the hub unreachable, fails at once naming the worker, the model and the cache", { timeout: 120_000 }, async () => {
    const dir = tempDir("pdsdpo-preflight-");
    const sha = "0123456789abcdef0123456789abcdef01234567";
    const file = experiment(dir, `  ir: {kind: image-scorer, model: {source: hf, id: THUDM/ImageReward, revision: ${sha}, type: image-reward}, ${LOCAL_CPU}}`);
    // Online, but the hub's address refuses connections; an empty HF cache.
    const env = { HF_HUB_OFFLINE: "0", HF_ENDPOINT: "http://127.0.0.1:9", HF_HOME: join(dir, "hf-home") };
    const r = await cli(["workers", "check", file, "--store", join(dir, "store")], { env });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      `worker 'ir' (image-scorer) could not load its model THUDM/ImageReward@${sha}: THUDM/ImageReward@${sha} is neither a local directory nor in the HF cache (${join(dir, "hf-home", "hub")}), and the hub cannot be reached (`,
    );
    // Offline, it says so instead of trying.
    const offline = await cli(["workers", "check", file, "--store", join(dir, "store")], { env: { ...env, HF_HUB_OFFLINE: "1" } });
    expect(offline.exitCode).toBe(1);
    expect(offline.stderr).toContain("and HF_HUB_OFFLINE is set: fetch it on a connected machine into that cache first");
  });

  it("a worker placed on GPUs that do not exist where it starts fails before it loads, naming its devices", async () => {
    const dir = tempDir("pdsdpo-preflight-");
    const file = experiment(dir, `  gen: {kind: image-generator, model: {source: tiny, name: sd}, runtime: {type: local, device: auto, devices: [1]}}`);
    const r = await cli(["workers", "check", file, "--store", join(dir, "store")]);
    expect(r.exitCode).toBe(1);
    // This machine has no GPU: CUDA_VISIBLE_DEVICES=1 shows none.
    expect(r.stderr).toContain("worker 'gen' (image-generator) could not load its model tiny 'sd': placed on 1 GPU (runtime.devices), but this host shows none (CUDA_VISIBLE_DEVICES=1)");
  });
});
