// The train stage: dataset/pairs.jsonl -> DPO (TRL + LoRA) on the trainer worker. Step
// metrics stream to the terminal, events.jsonl and train/metrics.jsonl as they happen;
// the adapter ends up in the store and in train/adapter/. A finished training is journaled
// as one item (key: the train settings, the trainer's fingerprint, the dataset and its
// images); an unchanged rerun reuses its adapter and replays its step metrics. A sweep
// (plan/sweep.ts) trains one adapter a point, each on its nested subset of the pairs, in its
// own train/<point>/ directory and journal item: a resumed sweep reuses the points that
// finished and continues the interrupted one from its checkpoint.
import { DpoTrainerServiceClient } from "../../gen/pdsdpo/v1/dpo_trainer.js";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { resolvePath } from "../../config/load.js";
import { StageFailedError } from "../../errors.js";
import type { RunEvent } from "../../events/types.js";
import { short, type Difference, type Tolerance } from "../../manifest/diff.js";
import type { ArtifactRecord } from "../../manifest/types.js";
import { OPS, trainKey } from "../../plan/item-keys.js";
import { derivedSeed } from "../../plan/seeds.js";
import { sizeProblem, subsetOf, sweepPoints, type SweepPoint } from "../../plan/sweep.js";
import { sha256, type ArtifactInfo } from "../../store/cas.js";
import { importDataset, type ImportedDataset } from "../dataset-import.js";
import { listSource } from "../worker-pool.js";
import { runCachedBatches } from "../batch-runner.js";
import { referencedWorkers, type Stage, type StageContext, type StageRun } from "../stage.js";
import { blobRef } from "../stage-util.js";

type StepMetrics = { step: number; epoch: number; metrics: Record<string, number> };
type AdapterFile = { path: string; sha256: string; bytes: number };

/** A sweep point's subset: its pairs file (relative to the run directory), hash and size. */
type Subset = { path: string; sha256: string; pairs: number };

// `point` names the sweep point an event belongs to; a run without a sweep has none.
type TrainEvent =
  | { type: "train.step"; step: number; epoch: number; metrics: Record<string, number>; cached?: boolean; point?: string }
  | { type: "train.checkpoint"; step: number; path: string; point?: string }
  | { type: "train.finished"; steps: number; interrupted: boolean; adapter: AdapterFile; metricsPath: string; point?: string }
  | { type: "train.dataset"; dataset: ImportedDataset }
  | { type: "train.point"; point: SweepPoint; subset: Subset };

/** What one training leaves in the manifest: steps, interrupted, adapter and metrics once it finished, and its checkpoints. */
export interface TrainingRecord {
  steps?: number;
  interrupted?: boolean;
  adapter?: AdapterFile;
  metrics?: string;
  final_metrics?: Record<string, number>;
  checkpoints: { step: number; path: string }[];
}

/** One sweep point in the manifest: its subset, and its training. */
export interface SweepPointRecord extends SweepPoint, TrainingRecord {
  subset: Subset;
}

declare module "../../events/types.js" {
  interface StageEvents {
    train: TrainEvent;
  }
}
declare module "../../manifest/types.js" {
  interface StageSections {
    train: TrainingRecord & {
      /** A train-only experiment's dataset: its source file and every image, pinned by hash. */
      dataset?: ImportedDataset;
      /** A sweep's points, in order: the training fields are then unset. */
      points?: SweepPointRecord[];
    };
  }
  interface ManifestOutputs {
    adapter_sha256: string;
  }
}
declare module "../stage.js" {
  interface StageResults {
    /** Each trained LoRA adapter by variant name ("trained", or a sweep point's): its directory (relative to the run directory) and weights hash. */
    adapters?: TrainedAdapter[];
  }
}

export interface TrainedAdapter {
  name: string;
  dir: string;
  sha256: string;
}

/** A finished training as the journal keeps it: the adapter's files and every step's metrics. */
interface TrainOutcome {
  steps: number;
  interrupted: boolean;
  adapter: ArtifactInfo;
  adapterConfig: ArtifactInfo;
  log: StepMetrics[];
}

function artifactInfo(ref: { uri: string; sha256: string; bytes: number; mediaType: string }): ArtifactInfo {
  return { uri: ref.uri, sha256: ref.sha256, bytes: ref.bytes, mediaType: ref.mediaType };
}

async function run(ctx: StageContext, stageRun: StageRun): Promise<void> {
  const { loaded, bus, store, runDir } = ctx;
  const stage = loaded.config.stages.train!;
  let imagesOfDataset = Array.from(ctx.results.images?.() ?? [], (k) => k.artifact.sha256);
  if (stage.dataset) {
    // A dataset of the user's own: made the run's, as the responses stage would have.
    let imported: ImportedDataset;
    try {
      ({ dataset: imported, imageHashes: imagesOfDataset } = await importDataset(loaded, runDir, store));
    } catch (e) {
      throw new StageFailedError((e as Error).message);
    }
    bus.emit({ type: "train.dataset", dataset: imported });
    ctx.results.dataset = { path: imported.path, sha256: imported.sha256, pairs: imported.pairs };
  }
  const dataset = ctx.results.dataset;
  if (!dataset || dataset.pairs === 0) throw new StageFailedError("the train stage has no preference pairs to train on");
  const deepspeedConfig = stage.deepspeed ? resolvePath(loaded.baseDir, stage.deepspeed) : "";
  let deepspeed = "";
  if (deepspeedConfig) {
    try {
      deepspeed = sha256(readFileSync(deepspeedConfig));
    } catch {
      throw new StageFailedError(`stages.train.deepspeed: file not found: ${deepspeedConfig}`);
    }
  }
  const sweep = loaded.config.sweep;
  const points = sweep ? sweepPoints(sweep, loaded.config.seed) : [];
  const steps = stage.optim.max_steps ?? 0;
  stageRun.begin(steps * Math.max(1, points.length));
  stageRun.counts = { steps: 0 };
  ctx.results.adapters = [];
  const common = { imagesOfDataset, deepspeed, deepspeedConfig };
  if (!sweep) {
    await trainOne(ctx, stageRun, { ...common, name: "trained", dir: join(runDir.path, "train"), data: join(runDir.path, dataset.path), pairs: dataset.pairs, seed: loaded.config.seed, itemId: "adapter" });
    return;
  }
  // Every point's subset first: a size the pairs cannot give fails before any training.
  const lines = readFileSync(join(runDir.path, dataset.path), "utf8").split("\n").filter((l) => l.trim());
  const problem = sizeProblem(sweep, lines.length, `pairs in ${dataset.path}`);
  if (problem) throw new StageFailedError(`sweep.train.data_size: ${problem}`);
  const ids = lines.map((l) => (JSON.parse(l) as { id: string }).id);
  const subsets = points.map((point) => {
    const dir = join(runDir.path, "train", point.name);
    mkdirSync(dir, { recursive: true });
    const text = subsetOf([...lines.keys()], (i) => ids[i]!, point).map((i) => `${lines[i]}\n`).join("");
    const file = join(dir, "pairs.jsonl");
    runDir.writeAtomic(file, text);
    const subset: Subset = { path: runDir.rel(file), sha256: sha256(text), pairs: point.size };
    bus.emit({ type: "train.point", point, subset });
    return { point, dir, file };
  });
  for (const { point, dir, file } of subsets) {
    await trainOne(ctx, stageRun, { ...common, name: point.name, point: point.name, dir, data: file, pairs: point.size, seed: point.seed, itemId: point.name });
  }
}

interface OneTraining {
  /** The variant the adapter is evaluated as. */
  name: string;
  /** The sweep point, if any (named in its events). */
  point?: string;
  /** Its directory: adapter/, metrics.jsonl, checkpoints/. */
  dir: string;
  /** The pairs file it trains on. */
  data: string;
  pairs: number;
  /** The seed its training seed is derived from. */
  seed: number;
  itemId: string;
  imagesOfDataset: string[];
  deepspeed: string;
  deepspeedConfig: string;
}

/** One training: an adapter from one pairs file, journaled as one item. */
async function trainOne(ctx: StageContext, stageRun: StageRun, one: OneTraining): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal } = ctx;
  const stage = loaded.config.stages.train!;
  const trainer = pool.get(stage.trainer);
  const { dir, point, deepspeed, deepspeedConfig } = one;
  mkdirSync(join(dir, "adapter"), { recursive: true });
  const metricsPath = join(dir, "metrics.jsonl");
  const data = store.put(readFileSync(one.data), "application/jsonl");
  const before = stageRun.counts.steps ?? 0;
  const req = {
    dataset: blobRef(data),
    imageRoot: runDir.path,
    lora: { r: stage.lora.r, alpha: stage.lora.alpha, dropout: stage.lora.dropout, targetModules: targetModules(stage.lora.target_modules) },
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
      tf32: stage.optim.tf32,
      gradientCheckpointing: stage.optim.gradient_checkpointing,
    },
    seed: derivedSeed(one.seed, "train"),
    checkpointDir: join(dir, "checkpoints"),
    checkpointEvery: stage.checkpoint_every,
    gpus: stage.gpus,
    deepspeedConfig,
    // TensorBoard and W&B files go beside the adapter; not in the item's key (logs change no weights).
    reportTo: stage.report_to,
    logDir: stage.report_to.length ? dir : "",
  };
  const epochs = stage.optim.max_steps ? 1 : (stage.optim.epochs ?? 1);
  // Options left off are not in the key, so adding one never invalidates earlier trainings.
  const { tf32, gradientCheckpointing, ...optim } = req.optim;
  const keyedOptim = { ...optim, ...(tf32 ? { tf32 } : {}), ...(gradientCheckpointing ? { gradientCheckpointing } : {}) };
  const item = trainKey(trainer.fingerprint, { lora: req.lora, dpo: req.dpo, optim: keyedOptim, seed: req.seed, gpus: req.gpus, deepspeed }, [data.sha256, ...[...one.imagesOfDataset].sort()], one.itemId);
  const tag = point ? { point } : {};
  const finish = (r: TrainOutcome, cached: boolean) => {
    if (cached) {
      runDir.writeAtomic(metricsPath, r.log.map((l) => `${JSON.stringify({ step: l.step, epoch: l.epoch, ...l.metrics })}\n`).join(""));
      for (const l of r.log) bus.emit({ type: "train.step", step: l.step, epoch: l.epoch, metrics: l.metrics, cached: true, ...tag });
    }
    const adapterPath = join(dir, "adapter", "adapter_model.safetensors");
    runDir.placeArtifact(store.pathOf(r.adapter.sha256), adapterPath);
    runDir.placeArtifact(store.pathOf(r.adapterConfig.sha256), join(dir, "adapter", "adapter_config.json"));
    bus.emit({ type: "train.finished", steps: r.steps, interrupted: r.interrupted, adapter: { path: runDir.rel(adapterPath), sha256: r.adapter.sha256, bytes: r.adapter.bytes }, metricsPath: runDir.rel(metricsPath), ...tag });
    stageRun.counts = { ...stageRun.counts, pairs: ctx.results.dataset!.pairs, steps: before + r.steps, ...(point ? { adapters: (stageRun.counts.adapters ?? 0) + 1 } : {}) };
    ctx.results.adapters!.push({ name: one.name, dir: runDir.rel(join(dir, "adapter")), sha256: r.adapter.sha256 });
  };
  // The whole training is one item of one batch, on the trainer's first replica.
  await runCachedBatches<typeof item, TrainOutcome>(
    ctx,
    {
      stage: "train",
      op: OPS.train,
      worker: stage.trainer,
      source: listSource([item]),
      deadlineItems: () => one.pairs * epochs,
      items: (it) => [it],
      rpc: "Train",
      async *call(replica, _batch, options) {
        const log: StepMetrics[] = [];
        // Decided per call: a resumed run, or a retry after the trainer died, continues from the newest checkpoint.
        const attempt = { ...req, resume: existsSync(req.checkpointDir) };
        for await (const msg of replica.client.stream(DpoTrainerServiceClient, "Train", (c, deadline) => c.train(attempt, { deadline }), options)) {
          const ev = msg.event;
          if (ev?.$case === "step") {
            stageRun.counts.steps = before + ev.value.step;
            appendFileSync(metricsPath, `${JSON.stringify({ step: ev.value.step, epoch: ev.value.epoch, ...ev.value.metrics })}\n`);
            log.push({ step: ev.value.step, epoch: ev.value.epoch, metrics: ev.value.metrics });
            bus.emit({ type: "train.step", step: ev.value.step, epoch: ev.value.epoch, metrics: ev.value.metrics, ...tag });
          } else if (ev?.$case === "progress") {
            // "steps", or a step of the trainer's own load (reading the dataset, loading the model, its weights N of M).
            const what = ev.value.unit || "steps";
            stageRun.progress(point ? `${point} ${what}` : what, ev.value.done, ev.value.total);
          } else if (ev?.$case === "checkpoint") {
            bus.emit({ type: "train.checkpoint", step: ev.value.step, path: runDir.rel(ev.value.path), ...tag });
          } else if (ev?.$case === "result") {
            const r = ev.value;
            if (!r.adapter || !r.adapterConfig) throw new StageFailedError("the trainer returned no adapter");
            store.verify(r.adapter);
            store.verify(r.adapterConfig);
            const outcome: TrainOutcome = { steps: r.steps, interrupted: r.interrupted, adapter: artifactInfo(r.adapter), adapterConfig: artifactInfo(r.adapterConfig), log };
            // A stopped training is not a result to reuse; a resumed one is journaled whole only if it ran from step 1.
            yield { id: item.id, result: outcome, artifacts: [r.adapter.sha256, r.adapterConfig.sha256], transient: r.interrupted || log[0]?.step !== 1 };
          }
        }
      },
      onResult: (r, { cached }) => finish(r, cached),
    },
    signal,
  );
}

function section() {
  const steps: StepMetrics[] = [];
  const checkpoints: { step: number; path: string }[] = [];
  let result: Extract<RunEvent, { type: "train.finished" }> | undefined;
  let dataset: ImportedDataset | undefined;
  const points = new Map<string, SweepPointRecord>();
  return {
    listen(e: RunEvent) {
      if (e.type === "train.dataset") dataset = e.dataset;
      else if (e.type === "train.point") points.set(e.point.name, { ...e.point, subset: e.subset, checkpoints: [] });
      else if ((e.type === "train.step" || e.type === "train.checkpoint" || e.type === "train.finished") && e.point !== undefined) {
        const p = points.get(e.point);
        if (!p) return;
        if (e.type === "train.step") p.final_metrics = e.metrics;
        else if (e.type === "train.checkpoint") p.checkpoints.push({ step: e.step, path: e.path });
        else if (e.type === "train.finished") Object.assign(p, { steps: e.steps, interrupted: e.interrupted, adapter: e.adapter, metrics: e.metricsPath });
      } else if (e.type === "train.step") steps.push({ step: e.step, epoch: e.epoch, metrics: e.metrics });
      else if (e.type === "train.checkpoint") checkpoints.push({ step: e.step, path: e.path });
      else if (e.type === "train.finished") result = e;
    },
    build() {
      const swept = [...points.values()];
      const adapters = swept.flatMap((p) => (p.adapter ? [{ ...p.adapter, item: p.name }] : []));
      if (result) adapters.push({ ...result.adapter, item: "adapter" });
      const artifacts: ArtifactRecord[] = adapters.map((a) => ({ path: a.path, sha256: a.sha256, bytes: a.bytes, stage: "train", item: a.item }));
      return {
        section: {
          ...(result ? { steps: result.steps, interrupted: result.interrupted, adapter: result.adapter, metrics: result.metricsPath } : {}),
          final_metrics: steps.at(-1)?.metrics,
          checkpoints,
          ...(dataset ? { dataset } : {}),
          ...(swept.length ? { points: swept } : {}),
        },
        ...(result ? { outputs: { adapter_sha256: result.adapter.sha256 } } : {}),
        artifacts,
      };
    },
  };
}

/** Pure: the first difference of two trainings (a run's, or one sweep point's): the final loss, then the adapter's hash. */
function compareTraining(item: string, b: { steps?: number; final_metrics?: Record<string, number>; adapter?: { sha256: string } } | undefined, a: typeof b, tol: Tolerance): Difference | null {
  const lb = b?.final_metrics?.loss;
  const la = a?.final_metrics?.loss;
  if (typeof lb === "number" && typeof la === "number" && Math.abs(lb - la) > tol.loss * Math.max(Math.abs(lb), 1e-12)) {
    return { stage: "train", item: `${item}step ${String(b?.steps)}`, what: `loss ${lb} vs ${la}` };
  }
  // Under a loss tolerance the adapter's bytes differ whenever a loss did within it.
  if (b?.adapter?.sha256 !== a?.adapter?.sha256 && tol.loss === 0) return { stage: "train", item: `${item}adapter`, what: `sha256 ${short(b?.adapter?.sha256)} vs ${short(a?.adapter?.sha256)}` };
  return null;
}

export const trainStage: Stage<"train"> = {
  name: "train",
  events: ["train.dataset", "train.point", "train.step", "train.checkpoint", "train.finished"],
  cached: true,
  workers: (config) => referencedWorkers(config, "train"),
  plan({ loaded }) {
    const s = loaded.config.stages.train!;
    const sweep = loaded.config.sweep;
    return { max_steps: s.optim.max_steps ?? 0, epochs: s.optim.max_steps ? 0 : (s.optim.epochs ?? 1), gpus: s.gpus, adapters: sweep ? sweepPoints(sweep, loaded.config.seed).length : 1 };
  },
  run,
  restore(events, results) {
    results.adapters = events.flatMap((e) => (e.type === "train.finished" ? [{ name: e.point ?? "trained", dir: e.adapter.path.replace(/\/adapter_model\.safetensors$/, ""), sha256: e.adapter.sha256 }] : []));
  },
  section,
  compare(before, after, tol) {
    const b = before.stages.train;
    const a = after.stages.train;
    const main = compareTraining("", b, a, tol);
    if (main) return main;
    // A sweep: every point's subset and training.
    for (const p of b?.points ?? []) {
      const q = a?.points?.find((x) => x.name === p.name);
      if (!q) return { stage: "train", item: p.name, what: "missing from the replay" };
      if (p.subset.sha256 !== q.subset.sha256) return { stage: "train", item: `${p.name} subset`, what: `sha256 ${short(p.subset.sha256)} vs ${short(q.subset.sha256)}` };
      const d = compareTraining(`${p.name} `, p, q, tol);
      if (d) return d;
    }
    return null;
  },
  line(e) {
    const who = "point" in e && e.point ? ` ${e.point}` : "";
    if (e.type === "train.step") {
      const m = e.metrics;
      const fmt = (k: string) => (m[k] === undefined ? "" : ` ${k.replace("rewards/", "")}=${m[k]!.toFixed(4)}`);
      return `train${who} step ${e.step}${fmt("loss")}${fmt("rewards/margins")}${fmt("rewards/accuracies")}${fmt("learning_rate")}`;
    }
    if (e.type === "train.checkpoint") return `train${who} checkpoint at step ${e.step}: ${e.path}`;
    if (e.type === "train.point") return `train sweep point ${e.point.name}: ${e.subset.pairs} pairs (${e.subset.path}, sha256 ${e.subset.sha256.slice(0, 12)})`;
    if (e.type === "train.dataset") return `train dataset ${e.dataset.source.path} (${e.dataset.source.format}): ${e.dataset.pairs} pairs, ${e.dataset.images.count} images`;
    if (e.type === "train.finished") return `train${who} ${e.interrupted ? "interrupted" : "finished"} after ${e.steps} steps; adapter ${e.adapter.path} (sha256 ${e.adapter.sha256.slice(0, 12)})`;
    return null;
  },
};

/** The wire's target modules: "all-linear" travels as the one entry the trainer resolves against the language model. */
export function targetModules(value: string[] | "all-linear" | undefined): string[] {
  return value === undefined ? [] : value === "all-linear" ? ["all-linear"] : value;
}
