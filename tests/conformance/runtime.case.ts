// One conformance suite for every worker runtime (local now; docker and remote run it too
// as they land): the same life cycle, the same errors.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { WorkerStartError } from "../../src/errors.js";
import { WorkerKind } from "../../src/gen/pdsdpo/v1/common.js";
import { WorkerClient, ServingStatus } from "../../src/workers/clients.js";
import type { WorkerRuntime } from "../../src/workers/runtime.js";
import { tempDir } from "../helpers.js";

export function runRuntimeConformance(name: string, newRuntime: () => WorkerRuntime, runtime: Record<string, unknown>): void {
  // Each test starts a real worker: about 5 s, up to 20 s beside other test files.
  describe(`${name} runtime conformance`, { timeout: 120_000 }, () => {
    const store = tempDir("pdsdpo-rt-");
    const request = (worker: string, model: Record<string, unknown>) => ({
      name: worker,
      replica: 0,
      config: WorkerSchema.parse({ kind: "image-scorer", model, runtime }),
      baseDir: store,
      storeRoot: store,
      logPath: join(store, `${worker}.log`),
    });

    it("starts a worker that serves health, Describe and its kind; stop() exits it cleanly", async () => {
      const handle = await newRuntime().start(request("scorer", { source: "tiny", name: "clip-scorer" }));
      expect(handle.state).toBe("SERVING");
      // Where the start went, when the runtime sees the process (not for remote endpoints).
      if (handle.startup) expect(handle.startup.servingS).toBeGreaterThanOrEqual(handle.startup.listeningS);
      if (handle.startup) expect(handle.startup.listeningS).toBeGreaterThan(0);
      const client = new WorkerClient("scorer", handle.address, handle.connection);
      // Any other local process: health answers, every other call is refused without the worker's token.
      const stranger = new WorkerClient("stranger", handle.address);
      try {
        expect(await stranger.checkHealth(5000)).toBe(ServingStatus.SERVING);
        if (handle.connection?.token) await expect(stranger.describe()).rejects.toThrow(/UNAUTHENTICATED/);
        expect(await client.checkHealth(5000)).toBe(ServingStatus.SERVING);
        const info = await client.describe();
        expect(info.kind).toBe(WorkerKind.WORKER_KIND_IMAGE_SCORER);
        expect(info.model?.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
        expect(info.pid).toBeGreaterThan(0);
      } finally {
        client.close();
        stranger.close();
      }
      const exit = await handle.stop();
      expect(exit).toEqual({ exitCode: 0, signal: null });
      expect(handle.state).toBe("STOPPED");
      await expect(new WorkerClient("scorer", handle.address).checkHealth(1000)).rejects.toBeDefined();
    });

    it("kill() ends the worker at once", async () => {
      const handle = await newRuntime().start(request("killed", { source: "tiny", name: "clip-scorer" }));
      handle.kill();
      const exit = await handle.exited;
      expect(exit.signal).toBe("SIGKILL");
      expect(handle.exitInfo()).toEqual(exit);
    });

    it("a model that cannot load is a WorkerStartError naming the worker, the reason and the log", async () => {
      const req = request("broken", { source: "tiny", name: "no-such-model" });
      const err = await newRuntime().start(req).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkerStartError);
      expect((err as Error).message).toContain(`worker 'broken' (image-scorer) could not load its model tiny 'no-such-model': unknown tiny model 'no-such-model'`);
      expect((err as Error).message).toContain(`log: ${req.logPath}`);
    });
  });
}
