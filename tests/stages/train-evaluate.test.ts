// The train and evaluate stages through the real orchestrator, with test workers: step
// metrics stream to events.jsonl and train/metrics.jsonl, checkpoints are announced, the
// adapter lands in the store and train/adapter/; the evaluation runs the base and the trained
// model on the smoke-pope built from the generated images no trainer saw (after the overlap
// check) and writes the side-by-side summary; a
// request the trainer refuses fails the stage with its reason.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sha256 } from "../../src/store/cas.js";
import { tempDir } from "../helpers.js";
import { Fleet, ofType, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";
import { imagePrompts } from "../support/records.js";

const ALL = ["sd", "pick", "a", "b", "rm", "dpo", "pope"];

describe("train and evaluate stages", { timeout: 30_000 }, () => {
  it("streams step metrics and checkpoints, places the adapter, and evaluates base vs trained", async () => {
    const dir = tempDir("pdsdpo-train-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(ALL));
    try {
      const config = writeExperiment(dir, {
        workers: fleet.yaml(),
        prompts: 4,
        stages: [STAGE.images(), STAGE.responses(), STAGE.train({ checkpoint_every: 2, optim: "{lr: 0.001, max_steps: 4, batch_size: 1}", report_to: "[tensorboard, wandb]" }), STAGE.evaluate()].join("\n"),
      });
      const r = await runIn(config, store, { runId: "t1" });
      expect(r.status, String(r.error)).toBe("succeeded");
      // The trainer got the run's dataset, by reference into the store, with the run directory as image root.
      expect(fleet.worker("dpo").calls).toHaveLength(1);
      // train.report_to reaches the trainer with the run's train/ directory for the loggers' files.
      expect(fleet.worker("dpo").calls[0]!.request).toMatchObject({ reportTo: ["tensorboard", "wandb"], logDir: join(r.runDir, "train") });
      const steps = ofType(r.events, "train.step");
      expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4]);
      expect(ofType(r.events, "train.checkpoint").map((e) => e.step)).toEqual([2, 4]);
      expect(ofType(r.events, "train.checkpoint")[0]!.path).toBe("train/checkpoints/checkpoint-2");
      const metrics = readFileSync(join(r.runDir, "train/metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
      expect(metrics.map((x) => x.step)).toEqual([1, 2, 3, 4]);
      for (const [i, m] of metrics.entries()) {
        expect(m).toEqual({ step: i + 1, epoch: expect.any(Number), ...(steps[i]!.metrics as Record<string, number>) });
        expect(Object.keys(m)).toEqual(expect.arrayContaining(["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "learning_rate"]));
      }
      const adapter = readFileSync(join(r.runDir, "train/adapter/adapter_model.safetensors"));
      expect(sha256(adapter)).toBe(r.manifest.outputs.adapter_sha256);
      expect(existsSync(join(store, "cas", "sha256", sha256(adapter).slice(0, 2), sha256(adapter)))).toBe(true);
      expect(JSON.parse(readFileSync(join(r.runDir, "train/adapter/adapter_config.json"), "utf8"))).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8 });
      const train = r.manifest.stages.train as unknown as { steps: number; final_metrics: Record<string, number>; checkpoints: { step: number }[]; counts: Record<string, number> };
      expect(train.steps).toBe(4);
      expect(train.final_metrics).toEqual(steps.at(-1)!.metrics);
      expect(train.checkpoints.map((c) => c.step)).toEqual([2, 4]);
      expect(train.counts).toMatchObject({ steps: 4, pairs: r.manifest.outputs.dataset!.pairs });

      // The evaluate stage: base and trained on the smoke-pope built from the candidates the scorer did not keep.
      const evals = r.manifest.outputs.eval as { benchmark: string; benchmark_type: string; split: string; model: string; metrics: Record<string, number> }[];
      expect(evals.map((e) => `${e.benchmark}/${e.benchmark_type}/${e.split}/${e.model}`)).toEqual(["smoke-pope/smoke-pope/run/base", "smoke-pope/smoke-pope/run/trained"]);
      const prompts = imagePrompts(r.runDir, r.manifest);
      const unkept = prompts.flatMap((p) => p.candidates.filter((c) => c.sha256 && c.sha256 !== p.kept?.sha256));
      const smoke = readFileSync(join(r.runDir, "eval/smoke-pope.questions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { image: string });
      expect(smoke).toHaveLength(2 * unkept.length);
      const trainedOn = new Set(prompts.flatMap((p) => (p.kept ? [p.kept.sha256] : [])));
      for (const q of smoke) expect(trainedOn.has(sha256(readFileSync(join(r.runDir, q.image))))).toBe(false);
      for (const e of evals) {
        expect(e.metrics.questions).toBe(smoke.length);
        expect(e.metrics.unparseable! + e.metrics.yes_ratio! * smoke.length).toBeLessThanOrEqual(smoke.length);
      }
      // The overlap check ran against every training image and found none.
      const overlap = (r.manifest.stages.evaluate as unknown as { overlap: { benchmark_images: number; training_images: number; overlaps: unknown[] } }).overlap;
      expect(overlap).toMatchObject({ benchmark_images: unkept.length, training_images: r.manifest.outputs.dataset!.pairs, overlaps: [] });
      // The trained model answered with its adapter: the evaluator saw the adapter directory.
      expect(fleet.worker("pope").items).toEqual(["base", join(r.runDir, "train/adapter")]);
      const summary = readFileSync(join(r.runDir, "eval/summary.md"), "utf8");
      expect(summary).toContain("| run | accuracy |");
      expect(summary).toContain("Smoke check:");
      for (const model of ["base", "trained"]) {
        const answers = readFileSync(join(r.runDir, `eval/smoke-pope-run-${model}.answers.jsonl`), "utf8").trim().split("\n");
        expect(answers).toHaveLength(smoke.length);
      }
      expect(JSON.parse(readFileSync(join(r.runDir, "eval/metrics.json"), "utf8"))).toEqual(evals);
      expect(r.events.at(-1)).toMatchObject({ type: "run.finished", status: "succeeded" });
    } finally {
      await fleet.stop();
    }
  });

  it("a request the trainer refuses fails the stage and the run with the trainer's reason", async () => {
    const dir = tempDir("pdsdpo-train-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(ALL));
    try {
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 2, stages: [STAGE.images(), STAGE.responses(), STAGE.train({ optim: "{lr: 0.001, max_steps: 2, precision: bf16}" })].join("\n") });
      const r = await runIn(config, store, { runId: "bf16" });
      expect(r.status).toBe("failed");
      expect(r.manifest.error).toEqual({ code: "rpc", message: "dpo.Train: INVALID_ARGUMENT: precision bf16 needs a CUDA device; use fp32 on CPU" });
      expect(r.manifest.stages.train!.status).toBe("failed");
      expect(r.manifest.stages.responses!.status).toBe("succeeded");
    } finally {
      await fleet.stop();
    }
  });

  it("no pair to train on fails the train stage with a clear reason", async () => {
    const dir = tempDir("pdsdpo-train-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick", "a", "b", "rm", "dpo"], { rm: { faults: { score: () => 0 } } }));
    try {
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 2, stages: [STAGE.images(), STAGE.responses(), STAGE.train()].join("\n") });
      const r = await runIn(config, store, { runId: "nopairs" });
      expect(r.status).toBe("failed");
      expect(r.manifest.error).toEqual({ code: "stage_failed", message: "the train stage has no preference pairs to train on" });
      expect(fleet.calls("dpo")).toBe(0);
    } finally {
      await fleet.stop();
    }
  });
});
