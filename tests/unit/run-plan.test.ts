import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadExperiment } from "../../src/config/load.js";
import { allOnCpu, stagesToRun, workersFor } from "../../src/pipeline/run.js";
import { ROOT } from "../helpers.js";

describe("what a run starts", () => {
  const loaded = loadExperiment(join(ROOT, "configs/tiny.yaml"));

  it("the stages up to --until and the workers they use", () => {
    expect(stagesToRun(loaded, "responses")).toEqual(["images", "responses"]);
    expect(workersFor(loaded, ["images"])).toEqual(["sd", "pick"]);
    expect(workersFor(loaded, ["responses"])).toEqual(["llava-a", "llava-b", "rm"]);
  });

  it("waits for every worker up front only when all compute on the CPU", () => {
    expect(allOnCpu(loaded, ["sd", "pick", "llava-a"])).toBe(true);
    const gpu = structuredClone(loaded);
    gpu.config.workers.sd!.runtime = { ...gpu.config.workers.sd!.runtime, device: "auto" } as never;
    expect(allOnCpu(gpu, ["sd", "pick"])).toBe(false);
    expect(allOnCpu(gpu, ["pick"])).toBe(true);
  });
});
