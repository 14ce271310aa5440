// The workers of one run: started together, described, and stopped together. Turns an
// RPC failure of a worker that died into a WorkerCrashedError naming it and its log.
import type { WorkerKindName } from "../config/schema.js";
import type { LoadedConfig } from "../config/load.js";
import { OrchestratorError, WorkerCrashedError } from "../errors.js";
import type { EventBus } from "../events/bus.js";
import { WorkerInfo } from "../gen/pdsdpo/v1/common.js";
import { WorkerClient } from "../workers/clients.js";
import type { WorkerHandle, WorkerRuntime } from "../workers/runtime.js";

export interface RunningWorker {
  name: string;
  kind: WorkerKindName;
  handle: WorkerHandle;
  client: WorkerClient;
  info: WorkerInfo;
  batchSize: number | undefined;
  itemTimeoutMs: number;
}

export class WorkerPool {
  private readonly running = new Map<string, RunningWorker>();

  constructor(
    private readonly runtime: WorkerRuntime,
    private readonly loaded: LoadedConfig,
    private readonly where: { storeRoot: string; logPath: (worker: string) => string },
    private readonly bus: EventBus,
  ) {}

  get(name: string): RunningWorker {
    const w = this.running.get(name);
    if (!w) throw new OrchestratorError("internal", `worker '${name}' is not running`);
    return w;
  }

  /** Starts all named workers at once; if one fails, the others are stopped and its error thrown. */
  async startAll(names: string[], signal?: AbortSignal): Promise<void> {
    const results = await Promise.allSettled(names.map((n) => this.startOne(n, signal)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      await this.stopAll();
      throw failed.reason;
    }
  }

  private async startOne(name: string, signal?: AbortSignal): Promise<void> {
    const config = this.loaded.config.workers[name]!;
    const logPath = this.where.logPath(name);
    this.bus.emit({ type: "worker.starting", worker: name, kind: config.kind, logPath });
    const t0 = performance.now();
    const handle = await this.runtime.start({ name, config, baseDir: this.loaded.baseDir, storeRoot: this.where.storeRoot, logPath }, signal);
    const client = new WorkerClient(name, handle.address);
    let info: WorkerInfo;
    try {
      info = await client.describe();
    } catch (e) {
      client.close();
      await handle.stop();
      throw e;
    }
    this.running.set(name, { name, kind: config.kind, handle, client, info, batchSize: config.batch_size, itemTimeoutMs: config.item_timeout_s * 1000 });
    this.bus.emit({
      type: "worker.ready",
      worker: name,
      kind: config.kind,
      address: handle.address,
      pid: handle.pid,
      info: WorkerInfo.toJSON(info),
      runtime: handle.runtimeInfo,
      seconds: (performance.now() - t0) / 1000,
    });
  }

  /** Deadline of one call with `items` items. */
  deadlineMs(worker: RunningWorker, items: number): number {
    return 30_000 + worker.itemTimeoutMs * items;
  }

  /** If the worker's process ended, the RPC error becomes a crash naming the worker and its log. */
  async explain(worker: RunningWorker, err: unknown, what: string): Promise<unknown> {
    const exit = await Promise.race([worker.handle.exited, new Promise<null>((r) => setTimeout(() => r(null), 3000))]);
    if (!exit) return err;
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.exitCode}`;
    return new WorkerCrashedError(`worker '${worker.name}' (${worker.kind}) died during ${what} (${how}); log: ${worker.handle.logPath}`, err);
  }

  async stopAll(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.all(
      all.map(async (w) => {
        w.client.close();
        const exit = await w.handle.stop();
        this.bus.emit({ type: "worker.stopped", worker: w.name, exitCode: exit.exitCode, signal: exit.signal });
      }),
    );
  }
}
