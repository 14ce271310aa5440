// Failing and unusable workers through the real orchestrator, with test workers: an
// interrupted run cancels the calls in flight on the workers; a remote worker of another
// model, or one that never serves, is refused with its reason before any stage runs; a worker
// that cannot start while an earlier stage runs ends the run at once.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers.js";
import { Fleet, ofType, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";
import { modelSpecOf } from "../support/test-worker.js";

describe("failing workers", { timeout: 30_000 }, () => {
  it("an interrupted run (Ctrl-C) cancels the call in flight on the worker and fails as interrupted", async () => {
    const dir = tempDir("pdsdpo-fail-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick"], { sd: { faults: { hang: () => true } } }));
    try {
      const abort = new AbortController();
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 2, stages: STAGE.images() });
      const running = runIn(config, store, { runId: "c1", signal: abort.signal });
      // Both of the generator's calls are in it (one computing, one waiting its turn): interrupt.
      for (let i = 0; i < 200 && fleet.calls("sd") < 1; i++) await new Promise((r) => setTimeout(r, 10));
      abort.abort();
      const r = await running;
      expect(r.status).toBe("failed");
      expect(r.manifest.error).toEqual({ code: "interrupted", message: "interrupted; workers were stopped and finished items are kept in the store" });
      expect(r.manifest.stages.images!.status).toBe("failed");
      // The hanging calls were cancelled on the worker (the cancellation reaches it a moment
      // after the run returns): it is free for the next run.
      for (let i = 0; i < 200 && fleet.worker("sd").cancelledCalls < fleet.calls("sd"); i++) await new Promise((r) => setTimeout(r, 10));
      expect(fleet.worker("sd").cancelledCalls).toBe(fleet.calls("sd"));
      fleet.heal();
      const again = await runIn(config, store, { runId: "c2" });
      expect(again.status).toBe("succeeded");
    } finally {
      await fleet.stop();
    }
  });

  it("a remote worker serving another kind or model is refused before any stage runs", async () => {
    const dir = tempDir("pdsdpo-fail-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick"]));
    try {
      fleet.worker("sd").spec = modelSpecOf({ source: "tiny", name: "sd-xl" });
      const r = await runIn(writeExperiment(dir, { workers: fleet.yaml(), prompts: 1, stages: STAGE.images() }), store, { runId: "m1" });
      expect(r.status).toBe("failed");
      expect(r.manifest.error!.code).toBe("worker_start");
      expect(r.manifest.error!.message).toBe(`worker 'sd' at ${fleet.worker("sd").address}: serves a WORKER_KIND_IMAGE_GENERATOR with model 'sd-xl', but this worker is a WORKER_KIND_IMAGE_GENERATOR with model 'sd'; refusing it`);
      expect(ofType(r.events, "stage.started")).toEqual([]);
      expect(fleet.calls()).toBe(0);
    } finally {
      await fleet.stop();
    }
  });

  it("a remote worker that never serves fails after its start timeout, naming why", async () => {
    const dir = tempDir("pdsdpo-fail-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick"], { pick: { start_timeout_s: 1, faults: { notServing: true } } }));
    try {
      const t0 = Date.now();
      const r = await runIn(writeExperiment(dir, { workers: fleet.yaml(), prompts: 1, stages: STAGE.images() }), store, { runId: "h1" });
      expect(r.status).toBe("failed");
      expect(r.manifest.error).toEqual({ code: "worker_start", message: `worker 'pick' at ${fleet.worker("pick").address}: not healthy within 1s (NOT_SERVING)` });
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(ofType(r.events, "stage.started")).toEqual([]);
    } finally {
      await fleet.stop();
    }
  });

  it("a later stage's worker that cannot start ends the running stage at once", async () => {
    const dir = tempDir("pdsdpo-fail-");
    const store = join(dir, "store");
    // A slow image stage (each image takes 1 s: 12 s in all), and a responder that never serves (1 s start timeout).
    const fleet = await Fleet.start(store, workers(["sd", "pick", "a", "rm"], { sd: { faults: { delayMs: 1000 } }, a: { start_timeout_s: 1, faults: { notServing: true } } }));
    try {
      const t0 = Date.now();
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 6, stages: [STAGE.images(), STAGE.responses({ responders: "[a]" })].join("\n") });
      const r = await runIn(config, store, { runId: "late" });
      const seconds = (Date.now() - t0) / 1000;
      expect(r.status).toBe("failed");
      expect(r.manifest.error!.message).toMatch(/^worker 'a' at 127\.0\.0\.1:\d+: not healthy within 1s \(NOT_SERVING\)$/);
      // The images stage had started and was cut short, not run to its end.
      expect(ofType(r.events, "stage.started").map((e) => e.stage)).toEqual(["images"]);
      expect(r.manifest.stages.images!.status).toBe("failed");
      expect(ofType(r.events, "image.generated").length).toBeLessThan(12);
      // (The cancelled call's error waits up to 3 s for a remote worker's exit, which never comes.)
      expect(seconds).toBeLessThan(8);
    } finally {
      await fleet.stop();
    }
  });
});
