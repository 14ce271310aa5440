// The model families each worker kind loads (model option "type") and the tiny twins the
// workers build offline. Mirrors the Python workers' tables (each kind's BACKENDS and
// models/tiny.py BUILDERS); tests/integration/families.test.ts fails when the two differ.
import type { WorkerKindName } from "./schema.js";

/** Model types per kind; the first is the default (the Python BACKENDS order). */
export const MODEL_TYPES: Record<WorkerKindName, readonly string[]> = {
  "image-generator": ["diffusion-pipeline"],
  "image-scorer": ["clip", "image-reward"],
  responder: ["image-text-to-text", "text-generation"],
  "response-scorer": ["sequence-classification", "vlm-judge"],
  "dpo-trainer": ["image-text-to-text"],
  evaluator: ["image-text-to-text"],
};

const VLM_KINDS: WorkerKindName[] = ["responder", "dpo-trainer", "evaluator", "response-scorer"];
/** The kinds whose models are prompted through vlm.py, where prompt_format applies. */
const PROMPTED_KINDS: WorkerKindName[] = ["responder", "evaluator", "response-scorer"];

/** Tiny twins by builder name, with the worker kinds that can load each. */
export const TINY_MODELS: Record<string, readonly WorkerKindName[]> = {
  sd: ["image-generator"],
  "sd-nan": ["image-generator"],
  "sd-black": ["image-generator"],
  sd3: ["image-generator"],
  sdxl: ["image-generator"],
  "clip-scorer": ["image-scorer"],
  "image-reward": ["image-scorer"],
  llava: VLM_KINDS,
  "llava-mute": VLM_KINDS,
  "llava-next": VLM_KINDS,
  reward: ["response-scorer"],
  armorm: ["response-scorer"],
  llama: ["responder"],
};

/** Why a worker's model entry names a family its kind cannot load, if it does. */
export function familyProblem(kind: WorkerKindName, model: { source: string; name?: string; type?: string; prompt_format?: string }): { key: "type" | "name" | "prompt_format"; message: string } | undefined {
  if (model.type !== undefined && !MODEL_TYPES[kind].includes(model.type)) {
    return { key: "type", message: `unknown ${kind} model type '${model.type}' (known: ${MODEL_TYPES[kind].join(", ")})` };
  }
  if (model.source === "tiny" && model.name !== undefined) {
    const kinds = TINY_MODELS[model.name];
    if (!kinds) return { key: "name", message: `unknown tiny model '${model.name}' (known: ${Object.keys(TINY_MODELS).sort().join(", ")})` };
    if (!kinds.includes(kind)) return { key: "name", message: `tiny model '${model.name}' is not ${article(kind)} ${kind} model (it serves ${kinds.join(", ")})` };
  }
  // The trainer reads its prompts from the dataset (the pairs' chat messages), never a prompt format.
  if (model.prompt_format !== undefined && !PROMPTED_KINDS.includes(kind)) {
    return { key: "prompt_format", message: `${article(kind, true)} ${kind} takes no prompt_format (the responders, the evaluator and a VLM judge do)` };
  }
  return undefined;
}

function article(word: string, capital = false): string {
  const a = /^[aeiou]/.test(word) ? "an" : "a";
  return capital ? a[0]!.toUpperCase() + a.slice(1) : a;
}
