// A model's size from its files on disk, without loading it: parameter counts from the
// safetensors headers (8-byte length, then JSON of dtype and shape per tensor), the language
// model's shape from config.json. Hub models are looked up in the HF cache (never fetched);
// the paper's models are known without files (plan/model-sizes.ts).
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { resolvePath } from "../config/load.js";
import type { ModelConfig } from "../config/schema.js";
import { KNOWN_MODELS, type ModelSize } from "../plan/model-sizes.js";

/** Where the HF cache is, as huggingface_hub finds it. */
export function hfHubCache(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HUB_CACHE ?? join(env.HF_HOME ?? join(homedir(), ".cache", "huggingface"), "hub");
}

/** The snapshot directory of id@revision in the HF cache, if it is there. */
export function hfSnapshot(id: string, revision: string, cache = hfHubCache()): string | undefined {
  const repo = join(cache, `models--${id.replace("/", "--")}`);
  let commit = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    const ref = join(repo, "refs", revision);
    if (!existsSync(ref)) return undefined;
    commit = readFileSync(ref, "utf8").trim();
  }
  const dir = join(repo, "snapshots", commit);
  return existsSync(dir) ? dir : undefined;
}

function safetensorsParams(file: string): number {
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(8);
    readSync(fd, head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    if (n <= 0 || n > 100_000_000) throw new Error(`${file}: not a safetensors file`);
    const json = Buffer.alloc(n);
    readSync(fd, json, 0, n, 8);
    const header = JSON.parse(json.toString("utf8")) as Record<string, { shape?: number[] }>;
    let params = 0;
    for (const [k, t] of Object.entries(header)) if (k !== "__metadata__" && t.shape) params += t.shape.reduce((a, b) => a * b, 1);
    return params;
  } finally {
    closeSync(fd);
  }
}

function weightFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...weightFiles(p));
    else if (/\.(safetensors|bin|pt|pth)$/.test(name)) out.push(p);
  }
  return out;
}

/** The size of the model in a directory: safetensors counted exactly; other weight files as float32 (bytes / 4). */
export function sizeFromDirectory(dir: string): ModelSize | undefined {
  const files = weightFiles(dir);
  if (files.length === 0) return undefined;
  const safetensors = files.filter((f) => f.endsWith(".safetensors"));
  // A repository with both formats holds the same weights twice: count the safetensors only.
  const params = safetensors.length > 0 ? safetensors.reduce((s, f) => s + safetensorsParams(f), 0) : files.reduce((s, f) => s + statSync(f).size / 4, 0);
  const size: ModelSize = { params, basis: "weights" };
  const configPath = join(dir, "config.json");
  if (existsSync(configPath)) {
    const c = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    const t = ((c.text_config as Record<string, number> | undefined) ?? c) as Record<string, number>;
    if (t.num_hidden_layers && t.hidden_size && t.num_attention_heads) {
      const heads = t.num_attention_heads;
      size.lm = { layers: t.num_hidden_layers, hidden: t.hidden_size, kvHeads: t.num_key_value_heads ?? heads, headDim: t.head_dim ?? t.hidden_size / heads };
    }
    const v = c.vision_config as Record<string, number> | undefined;
    if (v?.image_size && v.patch_size) size.imageTokens = (v.image_size / v.patch_size) ** 2 * (c.model_type === "llava_next" ? 5 : 1);
  }
  return size;
}

/** A worker's model size: from its files when they are on disk, else the known table, else unknown. Tiny twins are negligible. */
export function modelSize(model: ModelConfig, baseDir: string, env: NodeJS.ProcessEnv = process.env): ModelSize {
  if (model.source === "tiny") return { params: 0, basis: "tiny" };
  const dir = model.source === "path" ? resolvePath(baseDir, model.path!) : hfSnapshot(model.id!, model.revision!, hfHubCache(env));
  const fromFiles = dir && existsSync(dir) ? sizeFromDirectory(dir) : undefined;
  if (fromFiles) return fromFiles;
  const known = model.source === "hf" ? KNOWN_MODELS[model.id!] : undefined;
  return known ? { ...known, basis: "known" } : { params: 0, basis: "unknown" };
}
