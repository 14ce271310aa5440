// Pure: the memory plan. Per stage and per device, the workers resident then (by the worker
// schedule, pipeline/schedule.ts) and an estimate of each one's memory from its model's size,
// without loading weights. With `gpu_memory_gb` declared, a stage whose workers cannot fit on
// a device is a problem the run refuses; an accelerator worker is loaded during the stage
// before its first when it fits beside that stage's workers.
//
// The estimate, in GB of 10^9 bytes (a planning aid, not a measurement):
// - weights: parameters x bytes per parameter (float32 4, float16/bfloat16 2, 8-bit 1.05,
//   4-bit 0.55: 4 bits plus the quantization state; unset dtype: float16 on a GPU, float32 on
//   the CPU);
// - a model that infers: weights x 1.1 + 1 GB (CUDA context, activations), plus, for a
//   responder or evaluator, the KV cache of a batch: batch x (image tokens + 64 + max new
//   tokens) x layers x 2 x KV heads x head dim x 2 bytes;
// - the trainer, per GPU: weights + LoRA's trainable parameters x (4 + 12 / shards) bytes
//   (gradient, and Adam's fp32 master and moments, sharded by DeepSpeed) + activations of the
//   chosen and rejected sequences (2 x batch x max_length x hidden x layers x 2 bytes, x 8
//   without gradient checkpointing) + 2 GB. LoRA's trainable share is 2r / hidden of the
//   matrices it adapts: all of them under `all-linear`, about a third (the attention
//   projections) otherwise.
import { batchSizeOf, benchmarkMaxNewTokens, type ExperimentConfig, type StageName, type WorkerConfig } from "../config/schema.js";
import { workerSchedule, type WorkerSpan } from "../pipeline/schedule.js";
import { devicesOf } from "../workers/requirements.js";
import type { ModelSize } from "./model-sizes.js";

export interface Resident {
  worker: string;
  /** NaN when the model's size is unknown. */
  gb: number;
}

export interface DeviceLoad {
  /** "cuda:<index>" or "cpu". */
  device: string;
  residents: Resident[];
  /** Sum over the residents of known size. */
  gb: number;
  limitGb?: number;
}

export interface MemoryPlan {
  stages: { stage: StageName; devices: DeviceLoad[] }[];
  schedule: Record<string, WorkerSpan>;
  /** The workers each stage uses, in the stages' order (what the schedule was made from). */
  usage: string[][];
  /** Each stage and device that cannot fit, in words. */
  problems: string[];
  /** Workers whose model size is unknown (not counted). */
  unknown: string[];
}

const GB = 1e9;

function bytesPerParam(w: WorkerConfig): number {
  if (w.model.quantization === "4bit") return 0.55;
  if (w.model.quantization === "8bit") return 1.05;
  const dtype = w.model.dtype ?? (onCpu(w) ? "float32" : "float16");
  return dtype === "float32" ? 4 : 2;
}

function onCpu(w: WorkerConfig): boolean {
  return w.runtime.type !== "remote" && w.runtime.device === "cpu";
}

/** Estimated GB one replica of a worker holds on each of its devices (NaN: unknown size). */
export function workerMemoryGb(config: ExperimentConfig, worker: string, size: ModelSize): number {
  const w = config.workers[worker]!;
  if (size.basis === "unknown") return Number.NaN;
  const weights = (size.params * bytesPerParam(w)) / GB;
  const train = config.stages.train;
  if (train && train.trainer === worker) {
    const lm = size.lm;
    if (!lm) return weights * 2 + 2;
    const share = ((2 * train.lora.r) / lm.hidden) * (train.lora.target_modules === "all-linear" ? 1 : 1 / 3);
    const shards = train.deepspeed ? train.gpus : 1;
    const states = (size.params * share * (4 + 12 / shards)) / GB;
    const tokens = train.optim.max_length ?? 2048;
    const activations = (2 * train.optim.batch_size * tokens * lm.hidden * lm.layers * 2 * (train.optim.gradient_checkpointing ? 1 : 8)) / GB;
    return weights + states + activations + 2;
  }
  let gb = weights * 1.1 + 1;
  const ev = config.stages.evaluate;
  // An evaluator answers with the most tokens any of its benchmarks allows.
  const newTokens = w.kind === "responder" ? config.stages.responses?.decoding.max_new_tokens : w.kind === "evaluator" && ev ? Math.max(...ev.benchmarks.map((b) => benchmarkMaxNewTokens(b, ev.max_new_tokens))) : undefined;
  if (size.lm && newTokens !== undefined) {
    const tokens = (size.imageTokens ?? 0) + 64 + newTokens;
    gb += (batchSizeOf(w) * tokens * size.lm.layers * 2 * size.lm.kvHeads * size.lm.headDim * 2) / GB;
  }
  return gb;
}

function limitOf(config: ExperimentConfig, device: number): number | undefined {
  const m = config.gpu_memory_gb;
  return m === undefined ? undefined : typeof m === "number" ? m : m[String(device)];
}

const round = (x: number) => Math.round(x * 10) / 10;

export function memoryPlan(config: ExperimentConfig, stages: StageName[], usage: string[][], sizes: Record<string, ModelSize>): MemoryPlan {
  const gb = Object.fromEntries(Object.keys(sizes).map((w) => [w, workerMemoryGb(config, w, sizes[w]!) * (config.workers[w]!.runtime.type === "remote" ? 0 : config.workers[w]!.replicas)]));
  const gpus = (w: string) => {
    const d = devicesOf(config, w);
    return d === "cpu" ? [] : d;
  };
  // Resident GB per stage and GPU, growing as prefetches are accepted.
  const base = workerSchedule(config, usage);
  const load = usage.map((_, i) => {
    const m = new Map<number, number>();
    for (const [w, s] of Object.entries(base)) if (s.start <= i && i <= s.stop) for (const d of gpus(w)) m.set(d, (m.get(d) ?? 0) + (gb[w] || 0));
    return m;
  });
  const schedule = workerSchedule(config, usage, (w, during) => {
    const ds = gpus(w);
    const fits = ds.length > 0 && ds.every((d) => limitOf(config, d) !== undefined && (load[during]!.get(d) ?? 0) + (gb[w] || 0) <= limitOf(config, d)!);
    if (fits && Number.isFinite(gb[w])) {
      for (const d of ds) load[during]!.set(d, (load[during]!.get(d) ?? 0) + gb[w]!);
      return true;
    }
    return false;
  });
  const problems: string[] = [];
  const out = stages.map((stage, i) => {
    const byDevice = new Map<string, Resident[]>();
    for (const [w, s] of Object.entries(schedule)) {
      if (s.start > i || i > s.stop) continue;
      const d = devicesOf(config, w);
      for (const name of d === "cpu" ? ["cpu"] : d.map((x) => `cuda:${x}`)) byDevice.set(name, [...(byDevice.get(name) ?? []), { worker: w, gb: round(gb[w]!) }]);
    }
    const devices = [...byDevice.entries()]
      .sort(([a], [b]) => (a === "cpu" ? 1 : b === "cpu" ? -1 : Number(a.slice(5)) - Number(b.slice(5))))
      .map(([device, residents]) => {
        const total = round(residents.reduce((s, r) => s + (Number.isFinite(r.gb) ? r.gb : 0), 0));
        const limitGb = device === "cpu" ? undefined : limitOf(config, Number(device.slice(5)));
        if (limitGb !== undefined && total > limitGb) {
          problems.push(`stage ${stage}, ${device}: ${residents.map((r) => `${r.worker} ${r.gb}`).join(" + ")} = ${total} GB > gpu_memory_gb ${limitGb}`);
        }
        return { device, residents, gb: total, ...(limitGb !== undefined ? { limitGb } : {}) };
      });
    return { stage, devices };
  });
  const unknown = Object.keys(sizes).filter((w) => sizes[w]!.basis === "unknown");
  return { stages: out, schedule, usage, problems, unknown };
}
