import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
// @ts-expect-error: a plain .mjs script without types
import { forDevice } from "../../bench/gpu/paper-twin.mjs";
import { parseExperiment } from "../../src/config/load.js";
import { ROOT } from "../helpers.js";

describe("bench/gpu/paper-twin.mjs", () => {
  const twin = parse(readFileSync(join(ROOT, "configs/paper-twin.yaml"), "utf8")) as Record<string, unknown>;

  it("places every worker on GPU 0 in the paper's precisions, and the result is a valid experiment", () => {
    const cuda = forDevice(twin, "cuda") as { workers: Record<string, { runtime: unknown; model: { dtype: string } }>; stages: { train: { optim: Record<string, unknown> }; images: Record<string, unknown> } };
    for (const w of Object.values(cuda.workers)) expect(w.runtime).toEqual({ type: "local", device: "cuda", devices: [0], start_timeout_s: 600 });
    expect(cuda.workers.dpo!.model.dtype).toBe("bfloat16");
    expect(cuda.workers["llava-vicuna-13b"]!.model.dtype).toBe("float16");
    expect(cuda.stages.train.optim).toMatchObject({ precision: "bf16", tf32: true });
    expect(cuda.stages.images.generator_device).toBe("model");
    for (const mode of ["cuda", "cpu"]) expect(parseExperiment(stringify(forDevice(twin, mode))).issues).toEqual([]);
  });
});
