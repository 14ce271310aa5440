// In the cluster the orchestrator finds a worker's replicas through its headless Service: the
// name resolves to every ready pod's address, all on the worker's port. Here two test workers
// stand in for two pods (127.0.0.1 and 127.0.0.2, one port), and a stand-in resolver for the
// Service's DNS: the run dials both and balances the batches across them; a pod that goes
// away mid-run is a replica that died, its batches requeued to the other.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runExperiment } from "../../src/pipeline/run.js";
import { RemoteRuntime } from "../../src/workers/remote-runtime.js";
import { RuntimeRouter } from "../../src/workers/runtime.js";
import { tempDir } from "../helpers.js";
import { Fleet, STAGE, writeExperiment } from "../support/fleet.js";
import { TestWorker } from "../support/test-worker.js";

const SERVICE = "localhost";

describe("headless Service discovery", { timeout: 30_000 }, () => {
  it("one replica per resolved address, calls balanced across them; a pod that goes away has its batches requeued", async () => {
    const dir = tempDir("pdsdpo-discovery-");
    const store = join(dir, "store");
    // The image stage's scorer is the worker under test; the generator is an ordinary endpoint.
    const fleet = await Fleet.start(store, { sd: { kind: "image-generator", model: { source: "tiny", name: "sd", seed: 0 } } });
    const first = await new TestWorker({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer", seed: 0 }, store, host: "127.0.0.1" }).start();
    const second = await new TestWorker({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer", seed: 0 }, store, host: "127.0.0.2", port: first.port }).start();
    const lookups: string[] = [];
    const runtime = new RuntimeRouter({
      remote: new RemoteRuntime({
        lookup: async (host) => {
          lookups.push(host);
          return ["127.0.0.2", "127.0.0.1"];
        },
      }),
    } as never);
    try {
      const workers = `${fleet.yaml()}  pick: {kind: image-scorer, model: {source: tiny, name: clip-scorer}, replicas: 2, batch_size: 2, runtime: {type: remote, service: "${SERVICE}:${first.port}", start_timeout_s: 10}}\n`;
      const file = writeExperiment(dir, { workers, stages: STAGE.images({ guidance_scales: "[5, 7, 9, 11]" }), prompts: 4 });
      // The second pod goes away after its first batch.
      second.faults = { unavailableAfter: () => 1 };
      const r = await runExperiment({ configPath: file, storeRoot: store, runId: "r1", runtime });
      expect(r.status, String(r.error)).toBe("succeeded");
      expect(lookups).toEqual([SERVICE, SERVICE]);
      // Both pods were dialed, each as its own replica, and both scored.
      const ready = r.manifest.workers.pick!;
      expect(ready.replicas).toBe(2);
      expect(first.modelCalls).toBeGreaterThan(0);
      expect(second.modelCalls).toBeGreaterThan(0);
      // Every image was scored once in the end; the lost pod's batch went to the other.
      expect(r.manifest.stages.images!.counts).toMatchObject({ candidates: 16, scored: 16 });
      expect(ready.requeues.length).toBeGreaterThan(0);
    } finally {
      await Promise.all([first.stop(), second.stop(), fleet.stop()]);
    }
  });
});
