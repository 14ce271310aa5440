import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { WorkerStartError } from "../../src/errors.js";
import { WorkerClient } from "../../src/workers/clients.js";
import { LocalRuntime } from "../../src/workers/local-runtime.js";
import { runRuntimeConformance } from "../conformance/runtime.case.js";
import { tempDir } from "../helpers.js";

runRuntimeConformance("local", () => new LocalRuntime(), { type: "local", device: "cpu", cpu_threads: 1 });

describe("local runtime", () => {
  it("requires its own per-run token; PDS_DPO_WORKER_TOKEN (the remote workers' variable) in the orchestrator's environment changes nothing", async () => {
    const dir = tempDir();
    const config = WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer" }, runtime: { type: "local", device: "cpu", cpu_threads: 1 } });
    process.env.PDS_DPO_WORKER_TOKEN = "a-remote-token";
    try {
      const handle = await new LocalRuntime().start({ name: "w", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "w.log") });
      const client = new WorkerClient("w", handle.address, handle.connection);
      try {
        expect(handle.connection?.token).toMatch(/^[0-9a-f]{64}$/);
        expect((await client.describe()).model?.spec?.id).toBe("clip-scorer");
        // The token travels in the environment, never in the argv a `ps` shows.
        expect(readFileSync(join(dir, "w.log"), "utf8")).not.toContain(handle.connection!.token!);
      } finally {
        client.close();
        await handle.stop();
      }
    } finally {
      delete process.env.PDS_DPO_WORKER_TOKEN;
    }
  });

  it("names a missing Python interpreter", async () => {
    const dir = tempDir();
    const config = WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer" }, runtime: { type: "local", python: "no/such/python" } });
    const err = await new LocalRuntime().start({ name: "w", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "w.log") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toBe(`worker 'w': Python interpreter not found at ${join(dir, "no/such/python")} (run the setup script, or set runtime.python)`);
  });
});
