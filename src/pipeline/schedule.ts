// Pure: when each worker of a run starts and stops, from the workers each stage uses.
//
// A worker is needed from its first stage to its last and stops when its last stage ends
// (`lifecycle: run` keeps it until the run ends). When it starts depends on where it runs:
// - a CPU worker (and a remote one, which is only connected to) starts with the run: its
//   model loads at a lower priority while earlier stages compute, which is faster on a CPU
//   host, where memory is plentiful;
// - an accelerator worker (device cuda or auto) starts just before its first stage, after the
//   workers of the stages before have stopped, or during the stage before when `prefetch`
//   says its memory fits beside that stage's workers (the memory plan decides).
import type { ExperimentConfig } from "../config/schema.js";

export interface WorkerSpan {
  /** Indexes into the stages that run: the first and last stage that use the worker. */
  first: number;
  last: number;
  /** The stage before which (or during which, when start < first) the worker starts. */
  start: number;
  /** The stage after which it stops. */
  stop: number;
}

/** A worker that loads on the CPU (or runs elsewhere): started with the run. */
export function startsWithRun(config: ExperimentConfig, worker: string): boolean {
  const rt = config.workers[worker]!.runtime;
  return rt.type === "remote" || rt.device === "cpu";
}

export function workerSchedule(
  config: ExperimentConfig,
  usage: string[][],
  prefetch: (worker: string, during: number) => boolean = () => false,
): Record<string, WorkerSpan> {
  const out: Record<string, WorkerSpan> = {};
  usage.forEach((workers, i) => {
    for (const w of workers) {
      const span = (out[w] ??= { first: i, last: i, start: i, stop: i });
      span.last = i;
    }
  });
  const end = usage.length - 1;
  for (const [w, span] of Object.entries(out)) {
    span.stop = config.workers[w]!.lifecycle === "run" ? end : span.last;
    if (startsWithRun(config, w)) span.start = 0;
    else if (span.first > 0 && prefetch(w, span.first - 1)) span.start = span.first - 1;
  }
  return out;
}

/** The workers to start before stage i and to stop after it, in config order. */
export function startingAt(schedule: Record<string, WorkerSpan>, i: number): string[] {
  return Object.keys(schedule).filter((w) => schedule[w]!.start === i);
}

export function stoppingAfter(schedule: Record<string, WorkerSpan>, i: number): string[] {
  return Object.keys(schedule).filter((w) => schedule[w]!.stop === i);
}
