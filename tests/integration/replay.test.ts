// orchestrate replay: the same manifest reruns to the same hashes (exit 0); a manifest whose
// worker was changed (another tiny model seed) exits 3 naming the first stage and item.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, LOCAL_CPU, tempDir, writePrompts } from "../helpers.js";

describe("orchestrate replay", () => {
  it("matches its own run, and names the first difference of a changed worker", async () => {
    const dir = tempDir();
    writePrompts(dir, 3);
    const config = join(dir, "e.yaml");
    writeFileSync(
      config,
      `name: replay-test
seed: 5
workers:
  sd: {kind: image-generator, model: {source: tiny, name: sd}, ${LOCAL_CPU}}
  pick: {kind: image-scorer, model: {source: tiny, name: clip-scorer}, ${LOCAL_CPU}}
  a: {kind: responder, model: {source: tiny, name: llava, seed: 1}, ${LOCAL_CPU}}
  b: {kind: responder, model: {source: tiny, name: llava, seed: 2}, ${LOCAL_CPU}}
  rm: {kind: response-scorer, model: {source: tiny, name: reward}, ${LOCAL_CPU}}
stages:
  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5, 9], steps: 2, size: 64}
  responses: {responders: [a, b], decoding: {max_new_tokens: 8}, scorer: rm, pairs: {drop_truncated: false}}
`,
    );
    const store = join(dir, "store");
    expect((await cli(["run", config, "--store", store, "--run-id", "orig"])).exitCode).toBe(0);
    const manifestPath = join(store, "runs", "orig", "manifest.json");

    const same = await cli(["replay", manifestPath, "--store", store]);
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toMatch(/^replay orig-replay-\S+ matches orig: every hash equal$/m);

    const changed = JSON.parse(readFileSync(manifestPath, "utf8")) as { config: { resolved: { workers: { b: { model: { seed: number } } } } } };
    changed.config.resolved.workers.b.model.seed = 9;
    const changedPath = join(dir, "changed-manifest.json");
    writeFileSync(changedPath, JSON.stringify(changed));
    const diff = await cli(["replay", changedPath, "--store", store]);
    expect(diff.exitCode).toBe(3);
    expect(diff.stderr.trim().split("\n").at(-1)).toMatch(/^error: replay orig-replay-\S+ differs from orig: first in stage responses, item art-001\.b\.s0: text differs at word \d+: /);
  });
});
