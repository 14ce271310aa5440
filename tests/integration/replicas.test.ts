// Three local replicas of the image generator, one killed mid-run: the run finishes with
// the same dataset as a one-replica run, and the manifest records the requeue.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { PIPELINE_DEPTH } from "../../src/pipeline/worker-pool.js";
import { BIN, cli, jsonLines, LOCAL_CPU, readJson, tempDir, writePrompts } from "../helpers.js";

function experiment(dir: string, replicas: number): string {
  writePrompts(dir, 6);
  const path = join(dir, `experiment-${replicas}.yaml`);
  writeFileSync(
    path,
    `name: replicas-test
seed: 21
workers:
  sd: {kind: image-generator, model: {source: tiny, name: sd}, ${LOCAL_CPU}, replicas: ${replicas}, max_restarts: 1, batch_size: 2}
  pick: {kind: image-scorer, model: {source: tiny, name: clip-scorer}, ${LOCAL_CPU}, batch_size: 4}
  a: {kind: responder, model: {source: tiny, name: llava, seed: 1}, ${LOCAL_CPU}}
  b: {kind: responder, model: {source: tiny, name: llava, seed: 2}, ${LOCAL_CPU}}
  rm: {kind: response-scorer, model: {source: tiny, name: reward}, ${LOCAL_CPU}}
stages:
  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5, 9], steps: 30, size: 64}
  responses: {responders: [a, b], decoding: {max_new_tokens: 8}, scorer: rm, pairs: {drop_truncated: false}}
`,
  );
  return path;
}

describe("replicas", () => {
  it("a replica killed mid-run: its batch is requeued, the replica restarted, the dataset unchanged", async () => {
    const dir = tempDir();
    const single = await cli(["run", experiment(dir, 1), "--store", join(dir, "s1"), "--run-id", "one"]);
    expect(single.exitCode).toBe(0);
    const expected = readFileSync(join(dir, "s1/runs/one/dataset/pairs.jsonl"));

    const run = execa("node", [BIN, "run", experiment(dir, 3), "--store", join(dir, "s3"), "--run-id", "three", "--json"], { reject: false, timeout: 170_000 });
    let buf = "";
    let killed = false;
    run.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      const events = jsonLines(buf);
      const victim = events.find((e) => e.type === "worker.ready" && e.worker === "sd" && e.replica === 1);
      // Every replica has a batch once the first image is back; kill replica 1 in the middle of its own.
      if (!killed && victim && events.some((e) => e.type === "image.generated")) {
        killed = true;
        process.kill(victim.pid as number, "SIGKILL");
      }
    });
    const r = await run;
    expect(killed).toBe(true);
    expect(r.exitCode).toBe(0);
    const events = jsonLines(r.stdout);
    expect(events.filter((e) => e.type === "worker.ready" && e.worker === "sd").map((e) => e.replica).sort()).toEqual([0, 1, 1, 2]);
    const manifest = readJson<{ workers: { sd: { replicas: number; requeues: { replica: number; items: number }[] } }; stages: { images: { counts: Record<string, number> } } }>(join(dir, "s3/runs/three/manifest.json"));
    expect(manifest.workers.sd.replicas).toBe(3);
    // Its batches in flight (up to PIPELINE_DEPTH) went back to the queue; it restarted once.
    const requeues = manifest.workers.sd.requeues;
    expect(requeues.length).toBeGreaterThanOrEqual(1);
    expect(requeues.length).toBeLessThanOrEqual(PIPELINE_DEPTH);
    for (const r of requeues) expect(r).toEqual(expect.objectContaining({ replica: 1, items: 2 }));
    // Each image once, whatever replica made it; the same dataset as one replica.
    expect(events.filter((e) => e.type === "image.generated")).toHaveLength(12);
    expect(manifest.stages.images.counts).toMatchObject({ candidates: 12, generated: 12 });
    expect(readFileSync(join(dir, "s3/runs/three/dataset/pairs.jsonl")).equals(expected)).toBe(true);
  });
});
