// What every process-backed runtime (local, docker) shares: a worker process in its own
// process group whose stdout announces "listening", its load steps ("loading"), "serving" or "load_failed"; readiness is
// gRPC health SERVING within the start timeout; logs go to logs/<worker>.log.
import { appendFileSync, readFileSync } from "node:fs";
import { execa } from "execa";
import { WorkerStartError } from "../errors.js";
import { ServingStatus, WorkerClient } from "./clients.js";
import { modelLabel } from "./model-spec.js";
import type { ConnectionOptions } from "./grpc-util.js";
import type { ExitInfo, WorkerHandle, WorkerStartRequest, WorkerState } from "./runtime.js";
import { spawnedProcess, type WorkerHost, type WorkerProcess } from "./worker-host.js";

const live = new Set<ProcessWorker>();
let exitHookInstalled = false;

// Last line of defence: a worker never outlives the orchestrator (it also watches its parent).
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const w of live) w.kill();
  });
}

class ProcessWorker implements WorkerHandle {
  state: WorkerState = "STARTING";
  address = "";
  connection?: ConnectionOptions;
  startup?: { listeningS: number; servingS: number };
  readonly exited: Promise<ExitInfo>;
  private exit: ExitInfo | null = null;

  constructor(
    readonly name: string,
    readonly kind: WorkerHandle["kind"],
    readonly logPath: string,
    readonly runtimeInfo: Record<string, unknown>,
    private readonly proc: WorkerProcess,
    private readonly onKill?: () => void,
  ) {
    this.exited = proc.exited;
    void this.exited.then((info) => {
      this.exit = info;
      if (this.state !== "STOPPING") this.state = this.state === "STARTING" || this.state === "SERVING" ? "FAILED" : this.state;
      else this.state = "STOPPED";
      live.delete(this);
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  exitInfo(): ExitInfo | null {
    return this.exit;
  }

  private signalGroup(sig: NodeJS.Signals): void {
    if (this.exit) return;
    this.proc.signalGroup(sig);
  }

  kill(): void {
    this.onKill?.();
    this.signalGroup("SIGKILL");
  }

  async stop(graceMs = 10_000): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    this.state = "STOPPING";
    this.signalGroup("SIGTERM");
    const timer = setTimeout(() => this.kill(), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

function lastLines(path: string, n: number): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-n).join(" | ");
  } catch {
    return "";
  }
}

export interface LaunchOptions {
  file: string;
  args: string[];
  env: Record<string, string>;
  runtimeInfo: Record<string, unknown>;
  startTimeoutS: number;
  /** The host address to dial, from the address the worker announced. */
  resolveAddress?: (announced: string) => Promise<string>;
  /** Extra clean-up on kill (a container outlives a killed `docker run`). */
  onKill?: () => void;
  /** The per-run token the worker requires on every call but health (runToken). */
  token?: string;
  pollMs?: number;
  /**
   * Start it in a session of its own (default). A worker that makes its own process group
   * (local: --own-process-group) stays in ours, where its lower load priority counts.
   */
  ownSession?: boolean;
  /** Fork it from this warm host instead of spawning `file` (local workers that may be forked). */
  host?: WorkerHost;
}

export async function launchWorker(req: WorkerStartRequest, o: LaunchOptions, signal?: AbortSignal): Promise<WorkerHandle> {
  // Appended, never truncated: a resumed run keeps the log of the attempt before it.
  appendFileSync(req.logPath, `--- ${new Date().toISOString()} starting ${req.name}: ${o.host ? "forked from the worker host of " : ""}${o.file} ${o.args.slice(0, 5).join(" ")} ...\n`);
  // A forked worker's argv is the host's; the spawned one's after "-m pds_dpo_workers".
  const proc = o.host
    ? o.host.start({ kind: req.config.kind, argv: o.args.slice(o.args.indexOf("serve")), env: o.env, logPath: req.logPath })
    : spawnedProcess(
        execa(o.file, o.args, {
          detached: o.ownSession ?? true,
          stdin: "ignore",
          stdout: "pipe",
          stderr: { file: req.logPath, append: true },
          buffer: false,
          reject: false,
          cleanup: true,
          env: o.env,
          extendEnv: true,
        }),
      );
  const worker = new ProcessWorker(req.name, req.config.kind, req.logPath, o.runtimeInfo, proc, o.onKill);
  if (o.token) worker.connection = { token: o.token };
  installExitHook();
  live.add(worker);

  // The worker's stdout protocol: "listening" (with its address), "loading" steps, then "serving" or "load_failed".
  let listening: string | undefined;
  let listeningS = 0;
  const t0 = performance.now();
  let loadFailed: string | undefined;
  let buf = "";
  proc.onStdout((chunk: Buffer) => {
    appendFileSync(req.logPath, chunk);
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const msg = JSON.parse(line) as { event?: string; address?: string; message?: string; step?: string; done?: number; total?: number };
        if (msg.event === "loading" && typeof msg.step === "string") req.onLoading?.({ step: msg.step, done: msg.done ?? 0, total: msg.total ?? 0 });
        if (msg.event === "listening" && msg.address) {
          listening = msg.address;
          listeningS = (performance.now() - t0) / 1000;
        }
        if (msg.event === "load_failed") loadFailed = msg.message ?? "model load failed";
      } catch {
        // Not a protocol line: it is only logged.
      }
    }
  });

  const timeoutMs = o.startTimeoutS * 1000;
  const deadline = Date.now() + timeoutMs;
  const where = `worker '${req.name}' (${req.config.kind})`;
  // The log's last lines are added only where the reason is otherwise unknown.
  const fail = async (why: string, withTail = false): Promise<never> => {
    worker.kill();
    await worker.exited;
    const tail = withTail ? lastLines(req.logPath, 3) : "";
    throw new WorkerStartError(`${where} ${why}; log: ${req.logPath}${tail ? ` (last lines: ${tail})` : ""}`);
  };

  let client: WorkerClient | undefined;
  try {
    for (;;) {
      if (signal?.aborted) return await fail("start was cancelled");
      if (Date.now() > deadline) return await fail(`did not become healthy within ${o.startTimeoutS}s`);
      if (loadFailed) return await fail(`could not load its model ${modelLabel(req.config.model)}: ${loadFailed}`);
      const exited = worker.exitInfo();
      if (exited) return await fail(`exited (${exited.signal ?? `code ${exited.exitCode}`}) before it was ready`, true);
      if (listening && !client) {
        try {
          worker.address = o.resolveAddress ? await o.resolveAddress(listening) : listening;
        } catch (e) {
          return await fail(`announced ${listening}, but its address could not be resolved: ${(e as Error).message.split("\n")[0]}`);
        }
        client = new WorkerClient(req.name, worker.address);
      }
      if (client) {
        const status = await client.checkHealth(2000).catch(() => null);
        if (status === ServingStatus.SERVING) {
          worker.state = "SERVING";
          worker.startup = { listeningS, servingS: (performance.now() - t0) / 1000 };
          return worker;
        }
      }
      await sleep(o.pollMs ?? 100);
    }
  } finally {
    client?.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
