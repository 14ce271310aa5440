// Replicas and requeue through the real orchestrator, with test workers: a remote replica whose
// call fails with UNAVAILABLE mid-stream is dropped and its batches requeued to the others; a
// local replica that dies is restarted (max_restarts) and its batches requeued; each image is
// made once whatever replica made it, to the same dataset as one replica; with no replica
// left the run fails naming the worker.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PIPELINE_DEPTH } from "../../src/pipeline/worker-pool.js";
import { tempDir } from "../helpers.js";
import { Fleet, ofType, runIn, STAGE, TestRuntime, workers, writeExperiment, type RunOutput, type WorkerDefs } from "../support/fleet.js";

const STAGES = [STAGE.images(), STAGE.responses()].join("\n");
const NAMES = ["sd", "pick", "a", "b", "rm"];

/** A one-replica run of the same experiment: the dataset every replica set must give. */
async function singleReplicaDataset(dir: string): Promise<Buffer> {
  const store = join(dir, "single");
  const fleet = await Fleet.start(store, workers(NAMES, { sd: { batch_size: 2 } }));
  try {
    const r = await runIn(writeExperiment(dir, { workers: fleet.yaml(), prompts: 6, stages: STAGES, file: "single.yaml" }), store, { runId: "one" });
    expect(r.status).toBe("succeeded");
    return readFileSync(join(r.runDir, "dataset/pairs.jsonl"));
  } finally {
    await fleet.stop();
  }
}

function expectEachImageOnce(r: RunOutput): void {
  const generated = ofType(r.events, "image.generated").map((e) => (e.candidate as { id: string }).id);
  expect(generated).toHaveLength(12);
  expect(new Set(generated).size).toBe(12);
  expect(r.manifest.stages.images!.counts).toMatchObject({ candidates: 12, generated: 12 });
}

describe("replicas", { timeout: 30_000 }, () => {
  it("a remote replica lost mid-stream: dropped, its batches requeued to the others, the dataset unchanged", async () => {
    const dir = tempDir("pdsdpo-replicas-");
    const expected = await singleReplicaDataset(dir);
    const store = join(dir, "three");
    const fleet = await Fleet.start(store, workers(NAMES, { sd: { replicas: 3, batch_size: 2, faults: { delayMs: 5 } } }));
    // Replica 1 answers one image of its first batch, then the connection is lost.
    fleet.worker("sd", 1).faults = { delayMs: 5, unavailableAfter: (call) => (call.index === 0 ? 1 : undefined) };
    try {
      const r = await runIn(writeExperiment(dir, { workers: fleet.yaml(), prompts: 6, stages: STAGES }), store, { runId: "three" });
      expect(r.status, String(r.error)).toBe("succeeded");
      const sd = r.manifest.workers.sd!;
      expect(sd.replicas).toBe(3);
      // Its batches in flight (up to PIPELINE_DEPTH) went back to the queue; a remote replica is never restarted.
      expect(sd.requeues.length).toBeGreaterThanOrEqual(1);
      expect(sd.requeues.length).toBeLessThanOrEqual(PIPELINE_DEPTH);
      for (const q of sd.requeues) expect(q).toEqual(expect.objectContaining({ replica: 1, items: 2 }));
      expect(sd.requeues[0]!.reason).toMatch(/UNAVAILABLE/);
      expect(ofType(r.events, "worker.requeued")).toHaveLength(sd.requeues.length);
      expect(ofType(r.events, "worker.ready").filter((e) => e.worker === "sd").map((e) => e.replica).sort()).toEqual([0, 1, 2]);
      // The dropped replica got no batch after its failure.
      expect(fleet.worker("sd", 1).modelCalls).toBeLessThanOrEqual(PIPELINE_DEPTH);
      expectEachImageOnce(r);
      expect(readFileSync(join(r.runDir, "dataset/pairs.jsonl")).equals(expected)).toBe(true);
    } finally {
      await fleet.stop();
    }
  });

  it("a local replica that dies mid-batch: restarted once (max_restarts), its batches requeued, the dataset unchanged", async () => {
    const dir = tempDir("pdsdpo-replicas-");
    const expected = await singleReplicaDataset(dir);
    // Replica 1's first process dies after one image of its first call; its restart works.
    const defs: WorkerDefs = workers(NAMES, {
      sd: { replicas: 3, max_restarts: 1, batch_size: 2, faults: { delayMs: 5 }, faultsFor: (replica, start) => ({ delayMs: 5, ...(replica === 1 && start === 0 ? { dieAfter: () => 1 } : {}) }) },
    });
    const runtime = new TestRuntime(defs);
    const store = join(dir, "three");
    const r = await runIn(writeExperiment(dir, { workers: runtime.yaml(), prompts: 6, stages: STAGES }), store, { runId: "three", runtime });
    expect(r.status, String(r.error)).toBe("succeeded");
    expect(ofType(r.events, "worker.ready").filter((e) => e.worker === "sd").map((e) => e.replica).sort()).toEqual([0, 1, 1, 2]);
    const sd = r.manifest.workers.sd!;
    expect(sd.replicas).toBe(3);
    expect(sd.requeues.length).toBeGreaterThanOrEqual(1);
    expect(sd.requeues.length).toBeLessThanOrEqual(PIPELINE_DEPTH);
    for (const q of sd.requeues) expect(q).toEqual(expect.objectContaining({ replica: 1, items: 2 }));
    expect(sd.requeues[0]!.reason).toMatch(/^worker 'sd' replica 1 \(image-generator\) died during Generate \(killed by SIGKILL\); log: .*sd\.1\.log; /);
    expect(runtime.of("sd")).toHaveLength(4);
    expect(readFileSync(join(r.runDir, "logs/sd.1.log"), "utf8").match(/starting sd/g)).toHaveLength(2);
    expectEachImageOnce(r);
    expect(readFileSync(join(r.runDir, "dataset/pairs.jsonl")).equals(expected)).toBe(true);
  });

  it("a local replica past its restarts is dropped and the others take its work", async () => {
    const dir = tempDir("pdsdpo-replicas-");
    const runtime = new TestRuntime(workers(["sd", "pick"], { sd: { replicas: 2, batch_size: 2, faultsFor: (replica) => (replica === 0 ? { dieAfter: () => 0 } : { delayMs: 5 }) } }));
    const r = await runIn(writeExperiment(dir, { workers: runtime.yaml(), prompts: 4, stages: STAGE.images() }), join(dir, "store"), { runId: "drop", runtime });
    expect(r.status, String(r.error)).toBe("succeeded");
    expect(runtime.of("sd")).toHaveLength(2);
    expect(r.manifest.workers.sd!.requeues.map((q) => q.replica)).toEqual(expect.arrayContaining([0]));
    expect(r.manifest.workers.sd!.requeues.map((q) => q.reason)).toEqual(expect.arrayContaining([expect.stringMatching(/; replica dropped$/)]));
    expect(r.manifest.stages.images!.counts).toMatchObject({ candidates: 8, generated: 8, kept: 4 });
  });

  it("with no replica left the run fails, naming the worker and its log", async () => {
    const dir = tempDir("pdsdpo-replicas-");
    const runtime = new TestRuntime(workers(["sd", "pick"], { sd: { replicas: 2, batch_size: 2, faults: { dieAfter: () => 0 } } }));
    const r = await runIn(writeExperiment(dir, { workers: runtime.yaml(), prompts: 2, stages: STAGE.images() }), join(dir, "store"), { runId: "none", runtime });
    expect(r.status).toBe("failed");
    expect(r.manifest.error).toEqual({ code: "worker_crashed", message: expect.stringMatching(/^worker 'sd' replica \d \(image-generator\) died during Generate \(killed by SIGKILL\); log: .*sd(\.1)?\.log$/) });
    expect(r.manifest.stages.images!.status).toBe("failed");
  });
});
