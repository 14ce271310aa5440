// The trainer killed mid-training, then `orchestrate resume`: finished stages are kept and
// training continues from its last checkpoint.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { BIN, cli, jsonLines, LOCAL_CPU, readJson, tempDir, writePrompts } from "../helpers.js";

function experiment(dir: string): string {
  writePrompts(dir, 4);
  const local = LOCAL_CPU;
  const path = join(dir, "experiment.yaml");
  writeFileSync(
    path,
    `name: resume-test
seed: 11
workers:
  sd: {kind: image-generator, model: {source: tiny, name: sd}, ${local}}
  pick: {kind: image-scorer, model: {source: tiny, name: clip-scorer}, ${local}}
  a: {kind: responder, model: {source: tiny, name: llava, seed: 1}, ${local}}
  b: {kind: responder, model: {source: tiny, name: llava, seed: 2}, ${local}}
  rm: {kind: response-scorer, model: {source: tiny, name: reward}, ${local}}
  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava, seed: 1}, ${local}}
stages:
  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5], steps: 2, size: 64}
  responses: {responders: [a, b], decoding: {max_new_tokens: 8}, scorer: rm, pairs: {drop_truncated: false}}
  train: {trainer: dpo, lora: {r: 4, alpha: 8, dropout: 0.0}, dpo: {beta: 0.1}, optim: {lr: 0.001, max_steps: 6, batch_size: 1}, checkpoint_every: 1}
`,
  );
  return path;
}

describe("orchestrate resume", () => {
  it("continues training from the last checkpoint after the trainer was killed", async () => {
    const dir = tempDir();
    const config = experiment(dir);
    const store = join(dir, "store");
    const run = execa("node", [BIN, "run", config, "--store", store, "--run-id", "r1", "--json"], { reject: false, timeout: 170_000 });
    let buf = "";
    let killed = false;
    run.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      const events = jsonLines(buf);
      const dpo = events.find((e) => e.type === "worker.ready" && e.worker === "dpo");
      if (!killed && dpo && events.some((e) => e.type === "train.checkpoint")) {
        killed = true;
        process.kill(dpo.pid as number, "SIGKILL");
      }
    });
    const first = await run;
    expect(killed).toBe(true);
    expect(first.exitCode).toBe(1);
    expect(first.stderr).toContain("worker 'dpo' (dpo-trainer) died during Train (killed by SIGKILL)");
    const runDir = join(store, "runs", "r1");
    const before = jsonLines(readFileSync(join(runDir, "events.jsonl"), "utf8"));
    const lastCheckpoint = Math.max(...before.filter((e) => e.type === "train.checkpoint").map((e) => e.step as number));

    const resumed = await cli(["resume", "r1", "--store", store, "--json"]);
    expect(resumed.exitCode).toBe(0);
    const events = jsonLines(resumed.stdout);
    // Only the trainer starts again; images and responses are not redone.
    expect(events.filter((e) => e.type === "worker.ready").map((e) => e.worker)).toEqual(["dpo"]);
    expect(events.filter((e) => e.type === "image.generated" || e.type === "response.generated")).toEqual([]);
    const steps = events.filter((e) => e.type === "train.step").map((e) => e.step as number);
    expect(steps[0]).toBeGreaterThan(lastCheckpoint);
    expect(steps[0]).toBeGreaterThan(1);
    expect(steps.at(-1)).toBe(6);
    const manifest = readJson<{ status: string; stages: { images: { status: string }; train: { steps: number } }; outputs: { adapter_sha256: string; dataset: { pairs: number } } }>(join(runDir, "manifest.json"));
    expect(manifest.status).toBe("succeeded");
    expect(manifest.stages.images.status).toBe("succeeded");
    expect(manifest.stages.train.steps).toBe(6);
    expect(manifest.outputs.dataset.pairs).toBeGreaterThan(0);
    expect(manifest.outputs.adapter_sha256).toMatch(/^[0-9a-f]{64}$/);
    // The first attempt's events and manifest are kept, and so is the trainer's log.
    expect(existsSync(join(runDir, "events.attempt-1.jsonl"))).toBe(true);
    expect(existsSync(join(runDir, "manifest.attempt-1.json"))).toBe(true);
    expect(readFileSync(join(runDir, "logs/dpo.log"), "utf8").match(/starting dpo/g)).toHaveLength(2);
  });

  it("refuses a run that does not exist or already succeeded", async () => {
    const dir = tempDir();
    const r = await cli(["resume", "nope", "--store", dir]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe(`error: no run nope in ${dir} (no ${join(dir, "runs/nope/manifest.json")})`);
  });
});
