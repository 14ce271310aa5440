// The train stage: dataset/pairs.jsonl -> DPO (TRL + LoRA) on the trainer worker. Step
// metrics stream to the terminal, events.jsonl and train/metrics.jsonl as they happen;
// the adapter ends up in the store and in train/adapter/.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { resolvePath } from "../config/load.js";
import { StageFailedError } from "../errors.js";
import { derivedSeed } from "../plan/seeds.js";
import type { StageContext } from "./stage-context.js";
import { blobRef, guarded } from "./stage-util.js";

export async function runTrainStage(ctx: StageContext): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal } = ctx;
  const stage = loaded.config.stages.train!;
  const dataset = ctx.results.dataset;
  if (!dataset || dataset.pairs === 0) throw new StageFailedError("the train stage has no preference pairs to train on");
  const trainer = pool.get(stage.trainer);
  const t0 = performance.now();
  bus.emit({ type: "stage.started", stage: "train", total: stage.optim.max_steps ?? 0 });
  const dir = join(runDir.path, "train");
  mkdirSync(join(dir, "adapter"), { recursive: true });
  const metricsPath = join(dir, "metrics.jsonl");
  const data = store.put(readFileSync(join(runDir.path, dataset.path)), "application/jsonl");
  const req = {
    dataset: blobRef(data),
    imageRoot: runDir.path,
    lora: { r: stage.lora.r, alpha: stage.lora.alpha, dropout: stage.lora.dropout, targetModules: stage.lora.target_modules ?? [] },
    dpo: { beta: stage.dpo.beta, lossType: stage.dpo.loss_type },
    optim: {
      learningRate: stage.optim.lr,
      scheduler: stage.optim.scheduler,
      warmupRatio: stage.optim.warmup_ratio,
      epochs: stage.optim.epochs ?? 0,
      maxSteps: stage.optim.max_steps ?? 0,
      batchSize: stage.optim.batch_size,
      gradAccumulation: stage.optim.grad_accumulation,
      maxLength: stage.optim.max_length ?? 0,
      precision: stage.optim.precision,
      projectorLearningRate: stage.optim.projector_lr ?? 0,
    },
    seed: derivedSeed(loaded.config.seed, "train"),
    checkpointDir: join(dir, "checkpoints"),
    checkpointEvery: stage.checkpoint_every,
    // A resumed run continues from the newest checkpoint of the earlier attempt.
    resume: existsSync(join(dir, "checkpoints")),
    gpus: stage.gpus,
    deepspeedConfig: stage.deepspeed ? resolvePath(loaded.baseDir, stage.deepspeed) : "",
  };
  const epochs = stage.optim.max_steps ? 1 : (stage.optim.epochs ?? 1);
  const deadlineMs = pool.deadlineMs(trainer, dataset.pairs * epochs);
  let steps = 0;
  try {
    for await (const msg of guarded(pool, trainer, "Train", trainer.client.train(req, { deadlineMs, signal }))) {
      const ev = msg.event;
      if (ev?.$case === "step") {
        steps = ev.value.step;
        appendFileSync(metricsPath, `${JSON.stringify({ step: ev.value.step, epoch: ev.value.epoch, ...ev.value.metrics })}\n`);
        bus.emit({ type: "train.step", step: ev.value.step, epoch: ev.value.epoch, metrics: ev.value.metrics });
      } else if (ev?.$case === "progress") {
        bus.emit({ type: "stage.progress", stage: "train", step: "steps", done: ev.value.done, total: ev.value.total });
      } else if (ev?.$case === "checkpoint") {
        bus.emit({ type: "train.checkpoint", step: ev.value.step, path: runDir.rel(ev.value.path) });
      } else if (ev?.$case === "result") {
        const r = ev.value;
        if (!r.adapter || !r.adapterConfig) throw new StageFailedError("the trainer returned no adapter");
        store.verify(r.adapter);
        store.verify(r.adapterConfig);
        const adapterPath = join(dir, "adapter", "adapter_model.safetensors");
        runDir.placeArtifact(store.pathOf(r.adapter.sha256), adapterPath);
        runDir.placeArtifact(store.pathOf(r.adapterConfig.sha256), join(dir, "adapter", "adapter_config.json"));
        bus.emit({
          type: "train.finished",
          steps: r.steps,
          interrupted: r.interrupted,
          adapter: { path: runDir.rel(adapterPath), sha256: r.adapter.sha256, bytes: r.adapter.bytes },
          metricsPath: runDir.rel(metricsPath),
        });
        steps = r.steps;
        ctx.results.adapter = { dir: runDir.rel(join(dir, "adapter")), sha256: r.adapter.sha256 };
      }
    }
  } catch (e) {
    bus.emit({ type: "stage.finished", stage: "train", status: "failed", counts: { steps }, seconds: (performance.now() - t0) / 1000 });
    throw e;
  }
  bus.emit({ type: "stage.finished", stage: "train", status: "succeeded", counts: { pairs: dataset.pairs, steps }, seconds: (performance.now() - t0) / 1000 });
}
