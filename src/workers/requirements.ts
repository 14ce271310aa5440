// Pure: the optional Python packages a worker needs for what the config asks of it. The
// worker checks them before it loads anything (`--require`), so a missing one fails the run
// within seconds of its start, naming the worker, never when the stage that needs it begins.
import { dirname } from "node:path";
import { resolvePath } from "../config/load.js";
import type { ExperimentConfig } from "../config/schema.js";

export function requiredPackages(config: ExperimentConfig, worker: string): string[] {
  const w = config.workers[worker];
  if (!w) return [];
  const out = new Set<string>();
  if (w.model.quantization) out.add("bitsandbytes");
  const train = config.stages.train;
  if (train && train.trainer === worker) {
    if (train.deepspeed) out.add("deepspeed");
    if (train.gpus > 1) out.add("accelerate");
    for (const logger of train.report_to) out.add(logger);
  }
  return [...out].sort();
}

/** The devices a worker occupies: GPU indices, "cpu", or none (a remote worker runs elsewhere). */
export function devicesOf(config: ExperimentConfig, worker: string): number[] | "cpu" | [] {
  const w = config.workers[worker]!;
  const rt = w.runtime;
  if (rt.type === "remote") return [];
  if (rt.device === "cpu") return "cpu";
  if (rt.devices) return rt.devices;
  if (rt.type === "docker" && Array.isArray(rt.gpus)) return rt.gpus;
  const gpus = config.stages.train?.trainer === worker ? config.stages.train.gpus : 1;
  return Array.from({ length: gpus }, (_, i) => i);
}

/**
 * Pure: how many GPUs a worker must see where it starts: those it is placed on (devicesOf)
 * when its config names them (`runtime.devices`, docker's `gpus` list), says `device: cuda`,
 * or runs a trainer of several processes; none on the CPU, for a plain `auto` (which may run
 * there) and for remote workers.
 */
export function expectedGpus(config: ExperimentConfig, worker: string): number {
  const w = config.workers[worker];
  const placed = w ? devicesOf(config, worker) : [];
  if (!w || placed === "cpu" || placed.length === 0 || w.runtime.type === "remote") return 0;
  const rt = w.runtime;
  const named = rt.devices !== undefined || (rt.type === "docker" && Array.isArray(rt.gpus));
  return named || rt.device === "cuda" || placed.length > 1 ? placed.length : 0;
}

/**
 * Pure: the directories besides the store that a worker's requests name (`--allow-root`): the
 * evaluator's benchmark question files and image directories, the trainer's DeepSpeed config.
 * The worker refuses any other path.
 */
export function allowedRoots(config: ExperimentConfig, worker: string, baseDir: string): string[] {
  const out = new Set<string>();
  const ev = config.stages.evaluate;
  if (ev && ev.evaluator === worker) {
    for (const b of ev.benchmarks) {
      for (const f of [b.path, ...Object.values(b.splits ?? {})]) if (f) out.add(dirname(resolvePath(baseDir, f)));
      if (b.image_root) out.add(resolvePath(baseDir, b.image_root));
    }
  }
  const train = config.stages.train;
  if (train?.trainer === worker && train.deepspeed) out.add(dirname(resolvePath(baseDir, train.deepspeed)));
  return [...out].sort();
}
