import { describe, expect, it } from "vitest";
import { ExperimentSchema } from "../../src/config/schema.js";
import { startingAt, stoppingAfter, workerSchedule } from "../../src/pipeline/schedule.js";

const config = (device: string, extra: Record<string, unknown> = {}) =>
  ExperimentSchema.parse({
    name: "s",
    workers: Object.fromEntries(
      ["sd", "pick", "a", "rm", "dpo", "pope"].map((w) => [w, { kind: "responder", model: { source: "tiny", name: "llava" }, runtime: { type: "local", device }, ...((extra[w] as object) ?? {}) }]),
    ),
    stages: { images: { prompts: "p.jsonl", generator: "sd", scorer: "pick", guidance_scales: [5], steps: 2 } },
  });
// Workers per stage: images, responses, train, evaluate.
const USAGE = [["sd", "pick"], ["a", "rm"], ["dpo"], ["pope"]];

describe("workerSchedule", () => {
  it("CPU workers start with the run; every worker stops after its last stage", () => {
    const s = workerSchedule(config("cpu"), USAGE);
    expect(startingAt(s, 0)).toEqual(["sd", "pick", "a", "rm", "dpo", "pope"]);
    expect([0, 1, 2, 3].map((i) => stoppingAfter(s, i))).toEqual([["sd", "pick"], ["a", "rm"], ["dpo"], ["pope"]]);
  });

  it("accelerator workers start just before their first stage, or during the one before when the memory plan allows", () => {
    const s = workerSchedule(config("cuda"), USAGE);
    expect([0, 1, 2, 3].map((i) => startingAt(s, i))).toEqual([["sd", "pick"], ["a", "rm"], ["dpo"], ["pope"]]);
    const pre = workerSchedule(config("auto"), USAGE, (w, during) => w === "pope" && during === 2);
    expect([0, 1, 2, 3].map((i) => startingAt(pre, i))).toEqual([["sd", "pick"], ["a", "rm"], ["dpo", "pope"], []]);
  });

  it("lifecycle: run keeps a worker until the run ends; a worker used by two stages lives across both", () => {
    const s = workerSchedule(config("cuda", { sd: { lifecycle: "run" } }), [["sd", "pick"], ["a", "rm"], ["dpo"], ["pope", "a"]]);
    expect(s.sd).toEqual({ first: 0, last: 0, start: 0, stop: 3 });
    expect(s.a).toEqual({ first: 1, last: 3, start: 1, stop: 3 });
    expect(stoppingAfter(s, 1)).toEqual(["rm"]);
  });
});
