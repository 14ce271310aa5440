import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { WorkerStartError } from "../../src/errors.js";
import { LocalRuntime } from "../../src/workers/local-runtime.js";
import { runRuntimeConformance } from "../conformance/runtime.case.js";
import { tempDir } from "../helpers.js";

runRuntimeConformance("local", () => new LocalRuntime(), { type: "local", device: "cpu", cpu_threads: 1 });

describe("local runtime", () => {
  it("names a missing Python interpreter", async () => {
    const dir = tempDir();
    const config = WorkerSchema.parse({ kind: "image-scorer", model: { source: "tiny", name: "clip-scorer" }, runtime: { type: "local", python: "no/such/python" } });
    const err = await new LocalRuntime().start({ name: "w", replica: 0, config, baseDir: dir, storeRoot: dir, logPath: join(dir, "w.log") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toBe(`worker 'w': Python interpreter not found at ${join(dir, "no/such/python")} (run the setup script, or set runtime.python)`);
  });
});
