// Pure: the optional Python packages a worker needs for what the config asks of it. The
// worker checks them before it loads anything (`--require`), so a missing one fails the run
// within seconds of its start, naming the worker, never when the stage that needs it begins.
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
