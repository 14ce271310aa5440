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
  }
  return [...out].sort();
}

/**
 * Pure: how many GPUs a worker must see where it starts: its `runtime.devices` (or docker's
 * `gpus` list), else one for `device: cuda` (the trainer's `train.gpus`); none on the CPU,
 * for `auto` (which may run there) and for remote workers.
 */
export function expectedGpus(config: ExperimentConfig, worker: string): number {
  const w = config.workers[worker];
  if (!w || w.runtime.type === "remote" || w.runtime.device === "cpu") return 0;
  const rt = w.runtime;
  const listed = rt.devices ?? (rt.type === "docker" && Array.isArray(rt.gpus) ? rt.gpus : undefined);
  if (listed) return listed.length;
  const trainer = config.stages.train?.trainer === worker ? config.stages.train.gpus : 1;
  return rt.device === "cuda" ? trainer : trainer > 1 ? trainer : 0;
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
