// The memory plan of the paper's configuration, from the known sizes of its models (no
// weights here): what is resident per stage and device, what cannot fit in a declared GPU
// memory, and how spreading the workers over devices makes it fit.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseExperiment } from "../../src/config/load.js";
import type { ExperimentConfig, StageName } from "../../src/config/schema.js";
import { memoryPlan, workerMemoryGb } from "../../src/plan/memory.js";
import { KNOWN_MODELS, type ModelSize } from "../../src/plan/model-sizes.js";
import { ROOT } from "../helpers.js";

const STAGES: StageName[] = ["images", "responses", "train", "evaluate"];
const USAGE = [["sd3", "imagereward"], ["llava-mistral-7b", "llava-vicuna-13b", "llava-vicuna-7b", "armorm"], ["dpo"], ["pope"]];

/** The paper's config with every worker on GPU 0 (as it ships, the 13B responder and ArmoRM are on GPU 1) and `gb` of memory declared, or none. */
const allOnGpu0 = (gb?: number) => (t: string) => t.replaceAll(", devices: [1]}", "}").replace("gpu_memory_gb: 80\n", gb === undefined ? "" : `gpu_memory_gb: ${gb}\n`);

function paper(edit: (text: string) => string = (t) => t): ExperimentConfig {
  const { config, issues } = parseExperiment(edit(readFileSync(join(ROOT, "configs/pds-dpo-paper.yaml"), "utf8")));
  expect(issues).toEqual([]);
  return config!;
}

const known = (c: ExperimentConfig): Record<string, ModelSize> =>
  Object.fromEntries(Object.entries(c.workers).map(([w, x]) => [w, { ...KNOWN_MODELS[x.model.id!]!, basis: "known" as const }]));

const on = (device: number, worker: string) => (t: string) => t.replace(new RegExp(`(  ${worker}:\\n(?:    .*\\n)*?    runtime: \\{type: local, device: cuda)\\}`), `$1, devices: [${device}]}`);

describe("memory plan", () => {
  it("states each worker's estimate from its size, dtype, quantization and work", () => {
    const c = paper(allOnGpu0());
    const s = known(c);
    // 4-bit: 0.55 bytes a parameter, x1.1 + 1 GB, plus the KV cache of a batch of 8 at 2928 image + 64 + 1000 new tokens.
    const kv = (8 * (2928 + 64 + 1000) * 32 * 2 * 8 * 128 * 2) / 1e9;
    expect(workerMemoryGb(c, "llava-mistral-7b", s["llava-mistral-7b"]!)).toBeCloseTo(7.57 * 0.55 * 1.1 + 1 + kv, 6);
    // bf16 scorer, no generation.
    expect(workerMemoryGb(c, "armorm", s.armorm!)).toBeCloseTo(7.51 * 2 * 1.1 + 1, 6);
    // The trainer: bf16 weights, LoRA r=128 on all linear layers (2r/hidden of the weights) with
    // Adam's states sharded over the two ZeRO-2 ranks, checkpointed activations at 5012 tokens, 2 GB.
    const states = (7.06e9 * ((2 * 128) / 4096) * (4 + 12 / 2)) / 1e9;
    const acts = (2 * 1 * 5012 * 4096 * 32 * 2) / 1e9;
    expect(workerMemoryGb(c, "dpo", s.dpo!)).toBeCloseTo(7.06 * 2 + states + acts + 2, 6);
    expect(workerMemoryGb(c, "dpo", { params: 0, basis: "unknown" })).toBeNaN();
  });

  it("all on GPU 0 with 40 GB: the responses stage does not fit, named with its device and workers", () => {
    const c = paper(allOnGpu0(40));
    const plan = memoryPlan(c, STAGES, USAGE, known(c));
    expect(plan.problems).toHaveLength(1);
    expect(plan.problems[0]).toMatch(/^stage responses, cuda:0: llava-mistral-7b [\d.]+ \+ llava-vicuna-13b [\d.]+ \+ llava-vicuna-7b [\d.]+ \+ armorm [\d.]+ = [\d.]+ GB > gpu_memory_gb 40$/);
    // The trainer's two processes hold GPUs 0 and 1 during training only.
    const train = plan.stages.find((s) => s.stage === "train")!;
    expect(train.devices.map((d) => [d.device, d.residents.map((r) => r.worker)])).toEqual([["cuda:0", ["dpo"]], ["cuda:1", ["dpo"]]]);
  });

  it("as shipped (2 x 80 GB, the 13B responder and ArmoRM on GPU 1) it fits, loading each stage's workers during the stage before", () => {
    const c = paper();
    const plan = memoryPlan(c, STAGES, USAGE, known(c));
    expect(plan.problems).toEqual([]);
    expect(plan.stages.find((s) => s.stage === "responses")!.devices.map((d) => [d.device, d.residents.map((r) => r.worker)])).toEqual([
      ["cuda:0", ["llava-mistral-7b", "llava-vicuna-7b", "dpo"]],
      ["cuda:1", ["llava-vicuna-13b", "armorm", "dpo"]],
    ]);
  });

  it("spread over four GPUs it fits; a worker loads during the stage before when it fits beside it", () => {
    const spread = (t: string) => [on(1, "llava-mistral-7b"), on(2, "llava-vicuna-13b"), on(3, "llava-vicuna-7b")].reduce((x, f) => f(x), allOnGpu0(40)(t));
    const c = paper(spread);
    expect(c.workers["llava-vicuna-13b"]!.runtime).toMatchObject({ devices: [2] });
    const plan = memoryPlan(c, STAGES, USAGE, known(c));
    expect(plan.problems).toEqual([]);
    const responses = plan.stages.find((s) => s.stage === "responses")!;
    expect(responses.devices.map((d) => d.device)).toEqual(["cuda:0", "cuda:1", "cuda:2", "cuda:3"]);
    for (const d of responses.devices) expect(d.gb).toBeLessThanOrEqual(40);
    // The responders' GPUs are free during the image stage: they load then.
    expect(plan.schedule["llava-vicuna-13b"]).toMatchObject({ first: 1, start: 0 });
    // The evaluator does not fit beside the trainer on GPU 0: it loads after training.
    expect(plan.schedule.pope).toMatchObject({ first: 3, start: 3 });
    // Without a declared memory nothing is loaded early.
    const undeclared = paper((t) => [on(1, "llava-mistral-7b"), on(2, "llava-vicuna-13b"), on(3, "llava-vicuna-7b")].reduce((x, f) => f(x), allOnGpu0()(t)));
    expect(memoryPlan(undeclared, STAGES, USAGE, known(undeclared)).schedule["llava-vicuna-13b"]).toMatchObject({ start: 1 });
  });

  it("a model of unknown size is listed, not counted", () => {
    const c = paper(allOnGpu0(40));
    const sizes = { ...known(c), armorm: { params: 0, basis: "unknown" as const } };
    const plan = memoryPlan(c, STAGES, USAGE, sizes);
    expect(plan.unknown).toEqual(["armorm"]);
    const responses = plan.stages.find((s) => s.stage === "responses")!.devices[0]!;
    expect(responses.residents.find((r) => r.worker === "armorm")!.gb).toBeNaN();
    expect(responses.gb).toBeCloseTo(responses.residents.filter((r) => r.worker !== "armorm").reduce((a, r) => a + r.gb, 0), 1);
  });
});
