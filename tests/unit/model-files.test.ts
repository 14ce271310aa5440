// A model's size from its files without loading it: safetensors headers, config.json, the HF
// cache layout; the known table when the weights are not on disk.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hfSnapshot, modelSize, sizeFromDirectory } from "../../src/workers/model-files.js";
import { tempDir } from "../helpers.js";

function safetensors(path: string, tensors: Record<string, number[]>): void {
  let offset = 0;
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: "F16", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, Buffer.alloc(offset)]));
}

describe("model files", () => {
  it("counts parameters from safetensors headers (shards, subfolders) and reads the language model's shape", () => {
    const dir = tempDir("pdsdpo-size-");
    safetensors(join(dir, "model-00001-of-00002.safetensors"), { a: [4, 8], b: [8] });
    safetensors(join(dir, "model-00002-of-00002.safetensors"), { c: [2, 3, 5] });
    mkdirSync(join(dir, "vae"));
    safetensors(join(dir, "vae", "diffusion_pytorch_model.safetensors"), { d: [10] });
    // The same weights in the older format beside them are not counted twice.
    writeFileSync(join(dir, "pytorch_model.bin"), Buffer.alloc(4000));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ model_type: "llava_next", text_config: { num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2 }, vision_config: { image_size: 32, patch_size: 8 } }),
    );
    expect(sizeFromDirectory(dir)).toEqual({ params: 32 + 8 + 30 + 10, basis: "weights", lm: { layers: 2, hidden: 64, kvHeads: 2, headDim: 16 }, imageTokens: 16 * 5 });
    expect(modelSize({ source: "path", path: dir, seed: 0 }, "/")).toMatchObject({ params: 80, basis: "weights" });
  });

  it("finds a hub model in the HF cache by commit or by a ref; else the known table; else unknown", () => {
    const cache = tempDir("pdsdpo-hfcache-");
    const sha = "0123456789abcdef0123456789abcdef01234567";
    const repo = join(cache, "models--org--model");
    mkdirSync(join(repo, "snapshots", sha), { recursive: true });
    mkdirSync(join(repo, "refs"));
    writeFileSync(join(repo, "refs", "main"), sha);
    safetensors(join(repo, "snapshots", sha, "model.safetensors"), { w: [3, 3] });
    expect(hfSnapshot("org/model", "main", cache)).toBe(join(repo, "snapshots", sha));
    expect(hfSnapshot("org/model", "v2", cache)).toBeUndefined();
    const env = { HF_HUB_CACHE: cache };
    expect(modelSize({ source: "hf", id: "org/model", revision: sha, seed: 0 }, "/", env)).toMatchObject({ params: 9, basis: "weights" });
    expect(modelSize({ source: "hf", id: "llava-hf/llava-1.5-7b-hf", revision: "main", seed: 0 }, "/", env)).toMatchObject({ params: 7.06e9, basis: "known", imageTokens: 576 });
    expect(modelSize({ source: "hf", id: "org/absent", revision: "main", seed: 0 }, "/", env)).toEqual({ params: 0, basis: "unknown" });
    expect(modelSize({ source: "tiny", name: "sd3", seed: 0 }, "/", env)).toEqual({ params: 0, basis: "tiny" });
  });
});
