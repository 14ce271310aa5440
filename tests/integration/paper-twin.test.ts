// configs/paper-twin.yaml end to end: the paper's configuration (tests/unit/paper-twin.test.ts
// keeps the two equal but for models and sizes) with each model swapped for a tiny twin of the
// same classes: SD3, ImageReward, three 4-bit LLaVA-1.6 responders on the raw prompt, the
// custom-code ArmoRM head, LoRA on all linear layers of LLaVA-1.5, POPE.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodePng } from "../../src/store/png.js";
import { cli, readJson, ROOT, tempDir } from "../helpers.js";

interface WeightFile {
  path: string;
  sha256: string;
}
interface Manifest {
  status: string;
  stages: Record<string, { status: string; counts: Record<string, number> }>;
  workers: Record<string, { info: { model: { modelClass: string; spec: { options?: Record<string, string>; quantization?: string }; remoteCode?: WeightFile[] } } }>;
}

describe("orchestrate run configs/paper-twin.yaml", () => {
  it("runs every stage of the paper's configuration on its twins; Describe names the paper's classes", { timeout: 600_000 }, async () => {
    const store = tempDir("pdsdpo-paper-twin-");
    const r = await cli(["run", join(ROOT, "configs/paper-twin.yaml"), "--store", store, "--run-id", "twin"], { timeoutMs: 540_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const runDir = join(store, "runs", "twin");
    const m = readJson<Manifest>(join(runDir, "manifest.json"));
    expect(m.status).toBe("succeeded");
    for (const s of ["images", "responses", "train", "evaluate"]) expect(m.stages[s]!.status, s).toBe("succeeded");

    const cls = Object.fromEntries(Object.entries(m.workers).map(([name, w]) => [name, w.info.model.modelClass]));
    expect(cls).toEqual({
      sd3: "StableDiffusion3Pipeline",
      imagereward: "ImageReward",
      "llava-mistral-7b": "LlavaNextForConditionalGeneration",
      "llava-vicuna-13b": "LlavaNextForConditionalGeneration",
      "llava-vicuna-7b": "LlavaNextForConditionalGeneration",
      armorm: "LlamaForRewardModelWithGating",
      dpo: "LlavaForConditionalGeneration",
      pope: "LlavaForConditionalGeneration",
    });
    for (const w of ["llava-mistral-7b", "llava-vicuna-13b", "llava-vicuna-7b"]) expect(m.workers[w]!.info.model.spec).toMatchObject({ quantization: "4bit", options: { prompt_format: "raw" } });

    // The custom code that ran is recorded with its hash: the file the twin ships.
    const code = m.workers.armorm!.info.model.remoteCode!;
    expect(code.map((f) => f.path)).toContain("modeling_custom.py");
    // Tiny models are built into the test run's tiny cache (vitest.config.ts).
    const tinyCache = process.env.PDS_DPO_TINY_CACHE!;
    const twinDir = readdirSync(tinyCache).find((d) => d.startsWith("armorm-seed0-"))!;
    const file = readFileSync(join(tinyCache, twinDir, "modeling_custom.py"));
    expect(code.find((f) => f.path === "modeling_custom.py")!.sha256).toBe(createHash("sha256").update(file).digest("hex"));

    // No size in the config: every kept image has the model's default size, never 0x0.
    const images = readdirSync(join(runDir, "images"));
    expect(images).toHaveLength(3);
    for (const name of images) {
      const png = decodePng(readFileSync(join(runDir, "images", name)));
      expect([png.width, png.height]).toEqual([96, 96]);
    }
    expect(m.stages.responses!.counts.candidates).toBe(3 * 3);

    // LoRA on every linear layer of the language model, and nothing else.
    const adapter = readJson<{ target_modules: string[] | string }>(join(runDir, "train/adapter/adapter_config.json"));
    const targets = ([] as string[]).concat(adapter.target_modules).join(" ");
    for (const proj of ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]) expect(targets).toContain(proj);
    expect(targets).not.toMatch(/vision_tower|multi_modal_projector|lm_head/);

    // All four fixture benchmarks on base and trained, with their papers' metrics, after the overlap check.
    const evals = readJson<{ benchmark: string; benchmark_type: string; split: string; model: string; metrics: Record<string, number> }[]>(join(runDir, "eval/metrics.json"));
    const of = (type: string) => evals.filter((e) => e.benchmark_type === type);
    expect(of("pope").map((e) => `${e.split}/${e.model}`)).toEqual(["random/base", "random/trained", "popular/base", "popular/trained", "adversarial/base", "adversarial/trained"]);
    for (const [type, keys] of Object.entries({ pope: ["accuracy", "precision", "recall", "f1", "yes_ratio"], "object-halbench": ["chair_s", "chair_i"], amber: ["chair", "cover", "hal", "cog", "accuracy"], mmhal: ["score", "hallucination_rate", "unparseable", "judge_errors"] })) {
      expect(of(type).map((e) => e.model), type).toEqual(type === "pope" ? ["base", "trained", "base", "trained", "base", "trained"] : ["base", "trained"]);
      for (const e of of(type)) for (const k of keys) expect(e.metrics[k], `${type} ${k}`).toEqual(expect.any(Number));
    }
    // The twin judge holds MMHal's whole rubric prompt (8192 positions): every answer is rated.
    for (const e of of("mmhal")) expect(e.metrics.judge_errors, `mmhal ${e.model}`).toBe(0);
    const overlap = readJson<{ benchmark_images: number; training_images: number; overlaps: unknown[]; allowed: boolean }>(join(runDir, "eval/overlap.json"));
    expect(overlap).toMatchObject({ training_images: 3, overlaps: [], allowed: false });
    expect(overlap.benchmark_images).toBeGreaterThan(0);
    expect(readJson<{ stages: { evaluate: { overlap: unknown } } }>(join(runDir, "manifest.json")).stages.evaluate.overlap).toEqual(overlap);
    // MMHal's answers exported in the file its GPT-4 scoring script reads.
    const responses = readJson<{ question: string; model_answer: string }[]>(join(runDir, "eval/mmhal-trained.responses.json"));
    expect(responses.length).toBe(of("mmhal")[0]!.metrics.questions);
  });
});
