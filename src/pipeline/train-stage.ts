// The train stage: dataset/pairs.jsonl -> DPO (TRL + LoRA) on the trainer worker. Step
// metrics stream to the terminal, events.jsonl and train/metrics.jsonl as they happen;
// the adapter ends up in the store and in train/adapter/. A finished training is journaled
// as one item (key: the train settings, the trainer's fingerprint, the dataset and its
// images); an unchanged rerun reuses its adapter and replays its step metrics.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { resolvePath } from "../config/load.js";
import { StageFailedError } from "../errors.js";
import { derivedSeed } from "../plan/seeds.js";
import type { StageContext } from "./stage-context.js";
import { OPS, trainKey } from "../plan/item-keys.js";
import { sha256, type ArtifactInfo } from "../store/cas.js";
import { blobRef, guarded } from "./stage-util.js";

export async function runTrainStage(ctx: StageContext): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal, cache } = ctx;
  const stage = loaded.config.stages.train!;
  const dataset = ctx.results.dataset;
  if (!dataset || dataset.pairs === 0) throw new StageFailedError("the train stage has no preference pairs to train on");
  const trainer = pool.get(stage.trainer);
  const t0 = performance.now();
  const deepspeedConfig = stage.deepspeed ? resolvePath(loaded.baseDir, stage.deepspeed) : "";
  let deepspeed = "";
  if (deepspeedConfig) {
    try {
      deepspeed = sha256(readFileSync(deepspeedConfig));
    } catch {
      throw new StageFailedError(`stages.train.deepspeed: file not found: ${deepspeedConfig}`);
    }
  }
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
    deepspeedConfig,
  };
  const epochs = stage.optim.max_steps ? 1 : (stage.optim.epochs ?? 1);
  const deadlineMs = pool.deadlineMs(trainer, dataset.pairs * epochs);
  let steps = 0;
  const item = trainKey(trainer.fingerprint, { lora: req.lora, dpo: req.dpo, optim: req.optim, seed: req.seed, gpus: req.gpus, deepspeed }, [data.sha256, ...(ctx.results.images ?? []).map((k) => k.artifact.sha256).sort()]);
  const finish = (r: TrainOutcome) => {
    const adapterPath = join(dir, "adapter", "adapter_model.safetensors");
    runDir.placeArtifact(store.pathOf(r.adapter.sha256), adapterPath);
    runDir.placeArtifact(store.pathOf(r.adapterConfig.sha256), join(dir, "adapter", "adapter_config.json"));
    bus.emit({ type: "train.finished", steps: r.steps, interrupted: r.interrupted, adapter: { path: runDir.rel(adapterPath), sha256: r.adapter.sha256, bytes: r.adapter.bytes }, metricsPath: runDir.rel(metricsPath) });
    steps = r.steps;
    ctx.results.adapter = { dir: runDir.rel(join(dir, "adapter")), sha256: r.adapter.sha256 };
  };
  const done = () => bus.emit({ type: "stage.finished", stage: "train", status: "succeeded", counts: { pairs: dataset.pairs, steps }, cache: cache.countsOf("train"), seconds: (performance.now() - t0) / 1000 });
  const reused = cache.reuseBatch<TrainOutcome>("train", OPS.train, [item])?.[0];
  if (reused) {
    runDir.writeAtomic(metricsPath, reused.log.map((l) => `${JSON.stringify({ step: l.step, epoch: l.epoch, ...l.metrics })}\n`).join(""));
    for (const l of reused.log) bus.emit({ type: "train.step", step: l.step, epoch: l.epoch, metrics: l.metrics, cached: true });
    finish(reused);
    done();
    return;
  }
  const log: TrainOutcome["log"] = [];
  cache.modelCall("train");
  try {
    for await (const msg of guarded(pool, trainer, "Train", trainer.client.train(req, { deadlineMs, signal }))) {
      const ev = msg.event;
      if (ev?.$case === "step") {
        steps = ev.value.step;
        appendFileSync(metricsPath, `${JSON.stringify({ step: ev.value.step, epoch: ev.value.epoch, ...ev.value.metrics })}\n`);
        log.push({ step: ev.value.step, epoch: ev.value.epoch, metrics: ev.value.metrics });
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
        const outcome: TrainOutcome = { steps: r.steps, interrupted: r.interrupted, adapter: artifactInfo(r.adapter), adapterConfig: artifactInfo(r.adapterConfig), log };
        finish(outcome);
        // A stopped training is not a result to reuse; a resumed one is journaled whole only if it ran from step 1.
        if (!r.interrupted && log[0]?.step === 1) cache.computed("train", OPS.train, item, outcome, [r.adapter.sha256, r.adapterConfig.sha256]);
      }
    }
  } catch (e) {
    bus.emit({ type: "stage.finished", stage: "train", status: "failed", counts: { steps }, cache: cache.countsOf("train"), seconds: (performance.now() - t0) / 1000 });
    throw e;
  }
  done();
}

/** A finished training as the journal keeps it: the adapter's files and every step's metrics. */
interface TrainOutcome {
  steps: number;
  interrupted: boolean;
  adapter: ArtifactInfo;
  adapterConfig: ArtifactInfo;
  log: { step: number; epoch: number; metrics: Record<string, number> }[];
}

function artifactInfo(ref: { uri: string; sha256: string; bytes: number; mediaType: string }): ArtifactInfo {
  return { uri: ref.uri, sha256: ref.sha256, bytes: ref.bytes, mediaType: ref.mediaType };
}
