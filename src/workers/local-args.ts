// Pure: the argv of a local worker process. Arrays, never shell strings.
import type { WorkerConfig } from "../config/schema.js";
import { modelSpecJson, toModelSpec } from "./model-spec.js";
import { RUN_TOKEN_ENV } from "./runtime.js";

export function localWorkerArgs(config: WorkerConfig, opts: { baseDir: string; storeRoot: string; parentPid: number; niceness?: number; requires?: string[]; expectGpus?: number; allowRoots?: string[] }): string[] {
  if (config.runtime.type !== "local") throw new Error(`not a local runtime: ${config.runtime.type}`);
  return [
    "-m",
    "pds_dpo_workers",
    "serve",
    "--kind",
    config.kind,
    "--model",
    modelSpecJson(toModelSpec(config.model, opts.baseDir)),
    "--store",
    opts.storeRoot,
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--parent-pid",
    String(opts.parentPid),
    "--own-process-group",
    // The per-run token, from the environment the runtime sets (never the argv).
    "--token-env",
    RUN_TOKEN_ENV,
    "--device",
    config.runtime.device,
    ...(config.runtime.cpu_threads ? ["--cpu-threads", String(config.runtime.cpu_threads)] : []),
    ...(opts.niceness ? ["--nice", String(opts.niceness)] : []),
    ...(opts.requires ?? []).flatMap((p) => ["--require", p]),
    ...(opts.expectGpus ? ["--expect-gpus", String(opts.expectGpus)] : []),
    ...(opts.allowRoots ?? []).flatMap((r) => ["--allow-root", r]),
  ];
}
