// The workers of one run: each with its replicas, started together, described, and stopped
// together. Batches are dispatched to ready replicas from a shared queue, two in flight per
// replica; a replica that dies has its batches requeued and is restarted. An RPC failure of a
// worker that died becomes a WorkerCrashedError naming it and its log.
import { allowedRoots, expectedGpus, requiredPackages } from "../workers/requirements.js";
import type { LoadedConfig } from "../config/load.js";
import { batchSizeOf, callTimeoutSOf, itemTimeoutSOf, replicaCount, type WorkerConfig, type WorkerKindName } from "../config/schema.js";
import { status } from "@grpc/grpc-js";
import { findError, isRetryable, OrchestratorError, RpcError, WorkerCrashedError } from "../errors.js";
import type { EventBus } from "../events/bus.js";
import { WorkerInfo } from "../gen/pdsdpo/v1/common.js";
import { WorkerClient } from "../workers/clients.js";
import { workerFingerprint, type WorkerFingerprint } from "../plan/cache-keys.js";
import type { LoadStep, WorkerHandle, WorkerRuntime } from "../workers/runtime.js";

export interface RunningWorker {
  name: string;
  replica: number;
  kind: WorkerKindName;
  handle: WorkerHandle;
  client: WorkerClient;
  info: WorkerInfo;
  batchSize: number;
  /** What decides the worker's outputs (cache keys); null when it cannot be known. */
  fingerprint: WorkerFingerprint | null;
}

/** Where batches come from: a fixed list, or a queue that fills while the stage runs. */
export interface BatchSource<B> {
  next(): Promise<B | null>;
}

export function listSource<B>(batches: B[]): BatchSource<B> {
  let i = 0;
  return { next: async () => (i < batches.length ? batches[i++]! : null) };
}

/** Calls in flight per replica (runBatches). */
export const PIPELINE_DEPTH = 2;

/**
 * Pure: the deadline of one call of `items` items: 30 s, plus the kind's per-item estimate for
 * each item and for the call queued before it on the replica (PIPELINE_DEPTH), capped by the
 * worker's call_timeout_s. A generator batch of 4 gets 16.5 minutes, not 80; a scorer batch
 * of 16 the same, not 5.3 hours.
 */
export function callDeadlineMs(w: WorkerConfig, items: number): number {
  return Math.min(callTimeoutSOf(w), 30 + itemTimeoutSOf(w) * items * PIPELINE_DEPTH) * 1000;
}

export class WorkerPool {
  private readonly running = new Map<string, RunningWorker[]>();
  private readonly restarts = new Map<string, number>();
  /** Replicas being restarted after a crash, so the other call in flight on one waits for it. */
  private readonly restarting = new Map<string, Promise<void>>();
  /** Remote replicas that stopped answering: not used again in this run. */
  private readonly dropped = new Set<string>();
  private readonly remembered = new Map<string, WorkerInfo>();
  /** Background starts (begin): per worker, and every replica's, so stopAll can wait for them. */
  private readonly starting = new Map<string, Promise<void>>();
  private readonly replicaStarts: Promise<unknown>[] = [];
  private readonly startAbort = new AbortController();
  private startFailure: unknown;
  /** The lower CPU priority each worker loads its model at, on start and restart. */
  private readonly niceness = new Map<string, number>();
  private failAll: (e: unknown) => void = () => {};
  /** Rejects with the first start failure (never resolves). */
  private readonly anyFailure = new Promise<never>((_, reject) => (this.failAll = reject));

  constructor(
    private readonly runtime: WorkerRuntime,
    private readonly loaded: LoadedConfig,
    private readonly where: { storeRoot: string; logPath: (worker: string) => string },
    private readonly bus: EventBus,
  ) {
    this.anyFailure.catch(() => {});
  }

  /** The first replica: for single-call work (training, evaluation) and the worker's Describe. */
  get(name: string): RunningWorker {
    const w = this.running.get(name)?.[0];
    if (!w) throw new OrchestratorError("internal", `worker '${name}' is not running`);
    return w;
  }

  /** The Describe of a worker an earlier attempt of this run started (resume), for records that name it. */
  remember(name: string, info: WorkerInfo): void {
    this.remembered.set(name, info);
  }

  /** A worker's Describe: from its running first replica, else from an earlier attempt. */
  infoOf(name: string): WorkerInfo {
    return this.running.get(name)?.[0]?.info ?? this.remembered.get(name) ?? this.get(name).info;
  }

  replicas(name: string): RunningWorker[] {
    return this.running.get(name) ?? [];
  }

  /**
   * Starts every replica of the named workers in the background. `ready(names)` waits for
   * some of them, so a stage begins as soon as its own workers serve while the workers of
   * later stages still load. The first start failure goes to `onFailure` (the run aborts on
   * it) and is kept as `startError`. `niceness` lowers the CPU priority of some workers' loads.
   */
  begin(names: string[], signal: AbortSignal | undefined, onFailure: (e: unknown) => void = () => {}, niceness: Record<string, number> = {}): void {
    for (const [name, n] of Object.entries(niceness)) this.niceness.set(name, n);
    const startSignal = signal ? AbortSignal.any([signal, this.startAbort.signal]) : this.startAbort.signal;
    for (const name of names) {
      const replicas = Array.from({ length: replicaCount(this.loaded.config.workers[name]!) }, (_, i) => this.startReplica(name, i, startSignal));
      this.replicaStarts.push(...replicas);
      const all = Promise.all(replicas).then(() => undefined);
      all.catch((e: unknown) => {
        if (this.startFailure !== undefined) return;
        this.startFailure = e;
        this.failAll(e);
        onFailure(e);
      });
      this.starting.set(name, all);
    }
  }

  /** Waits until every replica of the named workers serves; rejects as soon as any worker fails to start. */
  async ready(names: string[]): Promise<void> {
    await Promise.race([Promise.all(names.map((n) => this.starting.get(n))), this.anyFailure]);
  }

  /** The first worker start that failed, if any. */
  get startError(): unknown {
    return this.startFailure;
  }

  /** Starts every replica of the named workers and waits for all; if one fails, every worker is stopped and its error thrown. */
  async startAll(names: string[], signal?: AbortSignal): Promise<void> {
    this.begin(names, signal);
    try {
      await this.ready(names);
    } catch (e) {
      await this.stopAll();
      throw this.startFailure ?? e;
    }
  }

  private logPath(name: string, replica: number): string {
    return this.where.logPath(replica === 0 ? name : `${name}.${replica}`);
  }

  private async startReplica(name: string, replica: number, signal?: AbortSignal): Promise<RunningWorker> {
    const config = this.loaded.config.workers[name]!;
    const logPath = this.logPath(name, replica);
    this.bus.emit({ type: "worker.starting", worker: name, replica, kind: config.kind, logPath });
    const t0 = performance.now();
    const niceness = this.niceness.get(name) ?? 0;
    const onLoading = (s: LoadStep) => this.bus.emit({ type: "worker.loading", worker: name, replica, ...s, seconds: (performance.now() - t0) / 1000 });
    const handle = await this.runtime.start({ name, replica, config, baseDir: this.loaded.baseDir, storeRoot: this.where.storeRoot, logPath, ...(niceness > 0 ? { niceness } : {}), requires: requiredPackages(this.loaded.config, name), expectGpus: expectedGpus(this.loaded.config, name), allowRoots: allowedRoots(this.loaded.config, name, this.loaded.baseDir), onLoading }, signal);
    const client = new WorkerClient(name, handle.address, { ...handle.connection, keepaliveMs: config.keepalive_s * 1000 });
    let info: WorkerInfo;
    try {
      info = await client.describe();
    } catch (e) {
      client.close();
      await handle.stop();
      throw e;
    }
    const described = WorkerInfo.toJSON(info) as Parameters<typeof workerFingerprint>[0];
    const threads = config.runtime.type === "local" ? (config.runtime.cpu_threads ?? null) : null;
    const fingerprint = workerFingerprint(described, handle.runtimeInfo, threads);
    const worker: RunningWorker = { name, replica, kind: config.kind, handle, client, info, batchSize: batchSizeOf(config), fingerprint };
    const list = this.running.get(name) ?? [];
    list[replica] = worker;
    this.running.set(name, list);
    this.bus.emit({
      type: "worker.ready",
      worker: name,
      replica,
      kind: config.kind,
      address: handle.address,
      pid: handle.pid,
      info: described,
      runtime: handle.runtimeInfo,
      fingerprint,
      ...(handle.startup ? { startup: { listening_s: handle.startup.listeningS, serving_s: handle.startup.servingS } } : {}),
      seconds: (performance.now() - t0) / 1000,
    });
    return worker;
  }

  /**
   * Runs every batch of `source` on the worker's replicas, PIPELINE_DEPTH calls in flight per
   * replica: the worker runs one batch at a time and the next one already waits in it, so
   * the model never idles for a round trip or for our handling of the last results.
   * A call that fails with a retryable error (the error says so) puts its batch back in the
   * queue, up to the worker's `retries` per batch (their results so far stay; the stage
   * ignores repeated item ids). A replica that died is restarted up to the worker's
   * max_restarts; past that, or when remote and unreachable, it is dropped and the others
   * take its work. Any other error fails the run.
   */
  async runBatches<B>(name: string, source: BatchSource<B>, size: (b: B) => number, call: (replica: RunningWorker, batch: B) => Promise<void>, signal?: AbortSignal, attempts = new Map<B, number>()): Promise<void> {
    const policy = this.loaded.config.workers[name]!;
    const retry: B[] = [];
    const next = async () => retry.shift() ?? (await source.next());
    const usable = this.replicas(name).map((_, i) => i).filter((i) => !this.dropped.has(`${name}#${i}`));
    let live = usable.length;
    const loop = async (index: number) => {
      const key = `${name}#${index}`;
      for (let batch = await next(); batch !== null; batch = await next()) {
        if (this.dropped.has(key)) {
          retry.push(batch);
          return;
        }
        const replica = this.replicas(name)[index]!;
        try {
          await call(replica, batch);
        } catch (e) {
          const tries = (attempts.get(batch) ?? 0) + 1;
          if (!isRetryable(e) || tries > policy.retries || signal?.aborted) throw e;
          attempts.set(batch, tries);
          const requeued = (why: string) => this.bus.emit({ type: "worker.requeued", worker: name, replica: index, items: size(batch), reason: `${(e as Error).message}; ${why}` });
          retry.push(batch);
          const remote = replica.handle.runtimeInfo.type === "remote";
          const died = findError(e, WorkerCrashedError) !== undefined;
          const unreachable = remote && findError(e, RpcError)?.grpcCode === status.UNAVAILABLE;
          // A live replica (a deadline, a passing unavailability) takes the batch again.
          if (!died && !unreachable) {
            requeued("retrying it");
            continue;
          }
          // The other call in flight on this replica failed with it: one restart (or drop) serves both.
          const pending = this.restarting.get(key);
          if (pending || this.replicas(name)[index] !== replica || this.dropped.has(key)) {
            requeued("requeued with the replica's other batch");
            await pending;
            if (this.dropped.has(key)) return;
            continue;
          }
          const restarts = (this.restarts.get(key) ?? 0) + 1;
          this.restarts.set(key, restarts);
          // Restart it (not ours to restart when remote) while its budget lasts...
          if (!remote && restarts <= policy.max_restarts) {
            requeued("restarting it");
            replica.client.close();
            const restart = this.startReplica(name, index, signal).then(() => undefined);
            // A failed restart fails the run; the replica's other call must not try again.
            this.restarting.set(key, restart.catch(() => void this.dropped.add(key)));
            try {
              await restart;
            } finally {
              this.restarting.delete(key);
            }
            continue;
          }
          // ...else drop it: the other replicas take its batch, and with none left the run fails.
          this.dropped.add(key);
          if (--live === 0) throw e;
          requeued("replica dropped");
          return;
        }
      }
    };
    const results = await Promise.allSettled(usable.flatMap((i) => Array.from({ length: PIPELINE_DEPTH }, () => loop(i))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    // A batch requeued after the other replicas finished still has to run.
    if (retry.length > 0) await this.runBatches(name, listSource(retry.splice(0)), size, call, signal, attempts);
  }

  /** Deadline of one call of `items` items to the worker (callDeadlineMs). */
  deadlineMs(worker: RunningWorker, items: number): number {
    return callDeadlineMs(this.loaded.config.workers[worker.name]!, items);
  }

  /** If the worker's process ended, the RPC error becomes a crash naming the worker and its log. */
  async explain(worker: RunningWorker, err: unknown, what: string): Promise<unknown> {
    // A remote worker is not ours: it never "exits" here, so there is nothing to wait for.
    if (worker.handle.runtimeInfo.type === "remote") return err;
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([worker.handle.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 3000)))]).finally(() => clearTimeout(timer));
    if (!exit) return err;
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.exitCode}`;
    const which = replicaCount(this.loaded.config.workers[worker.name]!) > 1 ? ` replica ${worker.replica}` : "";
    return new WorkerCrashedError(`worker '${worker.name}'${which} (${worker.kind}) died during ${what} (${how}); log: ${worker.handle.logPath}`, err);
  }

  /**
   * Stops every replica of the named workers once their last stage has ended; their Describe
   * stays known (infoOf) for the records that name them.
   */
  async stop(names: string[]): Promise<void> {
    await Promise.allSettled(names.map((n) => this.starting.get(n)));
    const replicas = names.flatMap((n) => this.running.get(n) ?? []);
    for (const n of names) {
      const first = this.running.get(n)?.[0];
      if (first) this.remembered.set(n, first.info);
      this.running.delete(n);
      this.starting.delete(n);
    }
    await Promise.all(replicas.map((w) => this.stopReplica(w)));
  }

  async stopAll(): Promise<void> {
    // Starts still under way are cancelled (their processes killed) before the rest stop.
    this.startAbort.abort();
    await Promise.allSettled(this.replicaStarts);
    const all = [...this.running.values()].flat();
    this.running.clear();
    await Promise.all(all.map((w) => this.stopReplica(w)));
  }

  private async stopReplica(w: RunningWorker): Promise<void> {
    w.client.close();
    const exit = await w.handle.stop();
    this.bus.emit({ type: "worker.stopped", worker: w.name, replica: w.replica, exitCode: exit.exitCode, signal: exit.signal });
  }
}
