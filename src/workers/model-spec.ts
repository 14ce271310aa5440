// Pure: the worker's ModelSpec (wire type) from experiment.yaml's model entry.
import { isHubRef, type ModelConfig } from "../config/schema.js";
import { resolvePath } from "../config/load.js";
import { ModelSource, modelSourceToJSON, type ModelSpec } from "../gen/pdsdpo/v1/common.js";

const SOURCES = { tiny: ModelSource.MODEL_SOURCE_TINY, hf: ModelSource.MODEL_SOURCE_HF, path: ModelSource.MODEL_SOURCE_PATH } as const;

export function toModelSpec(m: ModelConfig, baseDir: string): ModelSpec {
  return {
    source: SOURCES[m.source],
    id: m.source === "tiny" ? m.name! : (m.id ?? ""),
    revision: m.revision ?? "",
    path: m.path ? resolvePath(baseDir, m.path) : "",
    dtype: m.dtype ?? "",
    quantization: m.quantization ?? "",
    seed: m.seed,
    options: {
      ...(m.type ? { type: m.type } : {}),
      ...(m.trust_remote_code ? { trust_remote_code: "true" } : {}),
      ...(m.prompt_format ? { prompt_format: m.prompt_format } : {}),
      ...(m.tokenizer ? { tokenizer: isHubRef(m.tokenizer) ? m.tokenizer : resolvePath(baseDir, m.tokenizer) } : {}),
    },
  };
}

/** Proto JSON, as the worker's `--model` flag takes it. */
export function modelSpecJson(spec: ModelSpec): string {
  const out: Record<string, unknown> = { source: modelSourceToJSON(spec.source), id: spec.id };
  if (spec.revision) out.revision = spec.revision;
  if (spec.path) out.path = spec.path;
  if (spec.dtype) out.dtype = spec.dtype;
  if (spec.quantization) out.quantization = spec.quantization;
  if (spec.seed) out.seed = String(spec.seed);
  if (Object.keys(spec.options).length) out.options = spec.options;
  return JSON.stringify(out);
}

/** How errors name a model: the hub id at its revision, the tiny twin, or the directory. */
export function modelLabel(m: ModelConfig): string {
  if (m.source === "hf") return `${m.id}@${m.revision}`;
  if (m.source === "tiny") return `tiny '${m.name}'`;
  return m.path!;
}
