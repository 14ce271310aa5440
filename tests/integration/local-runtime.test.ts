import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { WorkerStartError } from "../../src/errors.js";
import { WorkerClient } from "../../src/workers/clients.js";
import { LocalRuntime } from "../../src/workers/local-runtime.js";
import type { LoadStep } from "../../src/workers/runtime.js";
import { runRuntimeConformance } from "../conformance/runtime.case.js";
import { tempDir } from "../helpers.js";

// CPU workers are forked from the warm worker host; the spawned path (CUDA workers, a differing runtime.env) conforms as well.
runRuntimeConformance("local", () => new LocalRuntime(), { type: "local", device: "cpu", cpu_threads: 1 });
runRuntimeConformance("local (spawned)", () => new LocalRuntime({ host: false }), { type: "local", device: "cpu", cpu_threads: 1 });

describe("local runtime", () => {
  it("requires its own per-run token; PDS_DPO_WORKER_TOKEN (the remote workers' variable) in the orchestrator's environment changes nothing", async () => {
    const dir = tempDir();
    const config = WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer" }, runtime: { type: "local", device: "cpu", cpu_threads: 1 } });
    process.env.PDS_DPO_WORKER_TOKEN = "a-remote-token";
    // A tiny cache of its own, so the model is built here whatever ran before.
    const tinyCache = process.env.PDS_DPO_TINY_CACHE;
    process.env.PDS_DPO_TINY_CACHE = join(dir, "tiny");
    try {
      const steps: LoadStep[] = [];
      const handle = await new LocalRuntime().start({ name: "w", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "w.log"), onLoading: (s) => steps.push(s) });
      const client = new WorkerClient("w", handle.address, handle.connection);
      try {
        // Its load, step by step, as it happened (a fresh tiny cache: the tiny model is built first).
        const names = [...new Set(steps.map((s) => s.step))];
        expect(names.slice(0, 3)).toEqual(["loading the image scorer model clip-scorer", "building the tiny model clip-scorer", "writing model shards"]);
        expect(names).toContain("loading weights");
        const hashed = steps.filter((s) => s.step === "hashing the model files");
        expect(hashed.at(-1)!.done).toBe(hashed.at(-1)!.total);
        expect(hashed.at(-1)!.total).toBeGreaterThan(1);
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
      process.env.PDS_DPO_TINY_CACHE = tinyCache;
    }
  });

  it("a worker host that dies while its worker starts fails that start, and the worker's log names the host's", async () => {
    const dir = tempDir();
    const config = WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer" }, runtime: { type: "local", device: "cpu", cpu_threads: 1 } });
    const start = new LocalRuntime().start({ name: "w", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "w.log") }).catch((e: unknown) => e);
    // The host of this store (its argv names the store; its workers' comm is pds-dpo-worker).
    const hostOf = () =>
      readdirSync("/proc").find((p) => {
        try {
          return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "pds-dpo-host" && readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(dir);
        } catch {
          return false;
        }
      });
    let host: string | undefined;
    for (const end = Date.now() + 60_000; !host && Date.now() < end; await new Promise((r) => setTimeout(r, 50))) host = hostOf();
    expect(host).toBeDefined();
    process.kill(Number(host), "SIGKILL");
    const err = await start;
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toMatch(/^worker 'w' \(image-scorer\) exited \(SIGKILL\) before it was ready/);
    expect((err as Error).message).toContain(`the worker host exited (SIGKILL); its log: ${join(dir, "worker-host.log")}`);
  });

  it("names a missing Python interpreter", async () => {
    const dir = tempDir();
    const config = WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer" }, runtime: { type: "local", python: "no/such/python" } });
    const err = await new LocalRuntime().start({ name: "w", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "w.log") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toBe(`worker 'w': Python interpreter not found at ${join(dir, "no/such/python")} (run the setup script, or set runtime.python)`);
  });
});
