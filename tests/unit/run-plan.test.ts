import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadExperiment } from "../../src/config/load.js";
import { NICE_PER_STAGE, startNiceness, stagesToRun, workersFor } from "../../src/pipeline/run.js";
import { ROOT } from "../helpers.js";

describe("what a run starts", () => {
  const loaded = loadExperiment(join(ROOT, "configs/tiny.yaml"));

  it("the stages up to --until and the workers they use", () => {
    expect(stagesToRun(loaded, "responses")).toEqual(["images", "responses"]);
    expect(workersFor(loaded, ["images"])).toEqual(["sd", "pick"]);
    expect(workersFor(loaded, ["responses"])).toEqual(["llava-a", "llava-b", "rm"]);
  });

  it("lowers the CPU priority of CPU workers by stage order; accelerator workers keep theirs", () => {
    expect(startNiceness(loaded, ["images", "responses", "train", "evaluate"])).toEqual({
      sd: 0, pick: 0, "llava-a": NICE_PER_STAGE, "llava-b": NICE_PER_STAGE, rm: NICE_PER_STAGE, dpo: Math.min(19, 2 * NICE_PER_STAGE), pope: Math.min(19, 3 * NICE_PER_STAGE),
    });
    // A resumed run counts from the first stage it still runs.
    expect(startNiceness(loaded, ["responses", "train"])).toEqual({ "llava-a": 0, "llava-b": 0, rm: 0, dpo: NICE_PER_STAGE });
    const gpu = structuredClone(loaded);
    gpu.config.workers["llava-a"]!.runtime = { ...gpu.config.workers["llava-a"]!.runtime, device: "auto" } as never;
    expect(startNiceness(gpu, ["images", "responses"])["llava-a"]).toBe(0);
  });
});
