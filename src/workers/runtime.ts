import { randomBytes } from "node:crypto";
// How a worker process (or container, or endpoint) comes to exist. Each runtime returns a
// handle with the same life cycle; one conformance suite runs against every runtime.
import type { WorkerConfig } from "../config/schema.js";
import type { ConnectionOptions } from "./grpc-util.js";

export type WorkerState = "STARTING" | "SERVING" | "STOPPING" | "STOPPED" | "FAILED";

export interface ExitInfo {
  exitCode: number | null;
  signal: string | null;
}

export interface WorkerStartRequest {
  name: string;
  /** Which replica (remote: which endpoint). */
  replica: number;
  config: WorkerConfig;
  /** Directory relative model paths are resolved against. */
  baseDir: string;
  storeRoot: string;
  logPath: string;
  /** Load the model at this lower CPU priority (nice 1..19; calls run at the normal one); process runtimes only. */
  niceness?: number;
  /** Optional Python packages the worker checks for before it loads its model (requiredPackages). */
  requires?: string[];
  /** GPUs the worker must see (its placement, expectedGpus), checked before it loads its model. */
  expectGpus?: number;
  /** Directories besides the store its requests may name (allowedRoots). */
  allowRoots?: string[];
  /** Told each step of the worker's load as it announces it (process runtimes). */
  onLoading?: (step: LoadStep) => void;
}

/** A step of a worker's load: what it does, and how far it is when it is counted (total > 0). */
export interface LoadStep {
  step: string;
  done: number;
  total: number;
}

export interface WorkerHandle {
  readonly name: string;
  readonly kind: WorkerConfig["kind"];
  readonly address: string;
  readonly pid: number;
  readonly logPath: string;
  readonly state: WorkerState;
  /** What the manifest records of how it was started (never secrets). */
  readonly runtimeInfo: Record<string, unknown>;
  /** Where its start time went (process runtimes): until it listened (process and imports), then until SERVING (model load). */
  readonly startup?: { listeningS: number; servingS: number };
  /** How to dial it, when not plain loopback gRPC (TLS, a bearer token). */
  readonly connection?: ConnectionOptions;
  /** Settles when the process ends, however it ends. */
  readonly exited: Promise<ExitInfo>;
  exitInfo(): ExitInfo | null;
  /** SIGTERM (the worker cancels its batch and exits 0), then SIGKILL after a grace period. */
  stop(graceMs?: number): Promise<ExitInfo>;
  /** Immediate SIGKILL of the whole process group. */
  kill(): void;
}

export interface WorkerRuntime {
  start(req: WorkerStartRequest, signal?: AbortSignal): Promise<WorkerHandle>;
}

/** Starts each worker on the runtime its config names. */
export class RuntimeRouter implements WorkerRuntime {
  constructor(private readonly runtimes: Partial<Record<WorkerConfig["runtime"]["type"], WorkerRuntime>>) {}

  start(req: WorkerStartRequest, signal?: AbortSignal): Promise<WorkerHandle> {
    const runtime = this.runtimes[req.config.runtime.type];
    if (!runtime) throw new Error(`no ${req.config.runtime.type} runtime is available`);
    return runtime.start(req, signal);
  }
}

/**
 * The variable a started worker reads its token from (`--token-env`), and a fresh token: each
 * worker the orchestrator starts requires its own on every call but health, so no other local
 * process can call it. It travels in the environment, never in an argv.
 */
export const RUN_TOKEN_ENV = "PDS_DPO_RUN_TOKEN";
export function runToken(): string {
  return randomBytes(32).toString("hex");
}
