// configs/paper-twin.yaml is the paper's configuration with each model swapped for its tiny
// twin and sizes reduced: nothing else may differ, so a run of the twin proves the paper's.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseExperiment } from "../../src/config/load.js";
import type { ExperimentConfig } from "../../src/config/schema.js";
import { ROOT } from "../helpers.js";

const parse = (file: string): ExperimentConfig => {
  const { config, issues } = parseExperiment(readFileSync(join(ROOT, "configs", file), "utf8"));
  expect(issues).toEqual([]);
  return config!;
};

/** The twin of each of the paper's models, by hub id. */
const TWIN: Record<string, string> = {
  "stabilityai/stable-diffusion-3-medium-diffusers": "sd3",
  "THUDM/ImageReward": "image-reward",
  "llava-hf/llava-v1.6-mistral-7b-hf": "llava-next",
  "llava-hf/llava-v1.6-vicuna-13b-hf": "llava-next",
  "llava-hf/llava-v1.6-vicuna-7b-hf": "llava-next",
  "RLHFlow/ArmoRM-Llama3-8B-v0.1": "armorm",
  "llava-hf/llava-1.5-7b-hf": "llava",
};

// What the twin may change: where the weights come from (model source, id or name, revision,
// seed, dtype, a tokenizer from elsewhere), the host (device and threads), sizes (prompt count, steps, max_new_tokens of
// responses, benchmark answers and MMHal judge replies) and
// the CUDA-only training settings (bf16, TF32, two GPUs under DeepSpeed).
const MODEL_ORIGIN = ["source", "id", "name", "revision", "seed", "dtype", "tokenizer"] as const;
const SIZES = [
  ["name"],
  ["gpu_memory_gb"],
  ["stages", "images", "limit"],
  ["stages", "images", "steps"],
  ["stages", "responses", "decoding", "max_new_tokens"],
  // Tokens per benchmark answer and per MMHal judge reply (the benchmark files are the same).
  ["stages", "evaluate", "benchmarks", 0, "max_new_tokens"],
  ["stages", "evaluate", "benchmarks", 0, "judge_max_new_tokens"],
  ["stages", "evaluate", "benchmarks", 1, "max_new_tokens"],
  ["stages", "evaluate", "benchmarks", 3, "max_new_tokens"],
  ["stages", "train", "optim", "precision"],
  ["stages", "train", "optim", "tf32"],
  ["stages", "train", "gpus"],
  ["stages", "train", "deepspeed"],
];

function withoutAllowed(config: ExperimentConfig): unknown {
  const c = structuredClone(config) as unknown as Record<string, unknown>;
  for (const path of SIZES) {
    let at = c as Record<string, unknown>;
    for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
    delete at[path.at(-1)!];
  }
  for (const w of Object.values(c.workers as Record<string, Record<string, unknown>>)) {
    for (const k of MODEL_ORIGIN) delete (w.model as Record<string, unknown>)[k];
    delete w.runtime;
  }
  return c;
}

describe("configs/paper-twin.yaml", () => {
  const paper = parse("pds-dpo-paper.yaml");
  const twin = parse("paper-twin.yaml");

  it("differs from configs/pds-dpo-paper.yaml only in model ids, revisions, hosts and sizes", () => {
    expect(withoutAllowed(twin)).toEqual(withoutAllowed(paper));
  });

  it("swaps each of the paper's hub models for the tiny twin of its family, on the CPU", () => {
    expect(Object.keys(twin.workers)).toEqual(Object.keys(paper.workers));
    for (const [name, w] of Object.entries(paper.workers)) {
      expect(w.model.source).toBe("hf");
      const t = twin.workers[name]!;
      expect({ worker: name, twin: t.model.source === "tiny" ? t.model.name : undefined }).toEqual({ worker: name, twin: TWIN[w.model.id!] });
      expect(t.runtime).toMatchObject({ type: "local", device: "cpu" });
    }
  });

  it("really reduces the sizes it may change", () => {
    expect(twin.stages.images!.steps).toBeLessThan(paper.stages.images!.steps);
    expect(twin.stages.images!.limit).toBeLessThanOrEqual(5);
    expect(twin.stages.responses!.decoding.max_new_tokens).toBeLessThan(paper.stages.responses!.decoding.max_new_tokens);
  });
});
