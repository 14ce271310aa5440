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

/**
 * Whether a local worker may be forked from the warm host (worker-host.ts) rather than spawned:
 * only when what the libraries read at import time would be the same in a fresh process. Its
 * runtime.env must change nothing of the orchestrator's environment (huggingface_hub reads
 * HF_HOME and HF_HUB_OFFLINE at import, torch its OpenMP settings), and it computes on the CPU:
 * a CUDA worker is spawned, since a fork must never inherit an initialised CUDA driver.
 */
export function forkable(rt: WorkerConfig["runtime"], env: NodeJS.ProcessEnv): boolean {
  if (rt.type !== "local") return false;
  return rt.device === "cpu" && !rt.devices && Object.entries(rt.env).every(([k, v]) => env[k] === v);
}
