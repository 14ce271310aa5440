// The `local` runtime: a Python worker process started with execa in its own process
// group, on a free loopback port that it announces on stdout. Ready means gRPC health
// SERVING; its stdout and stderr go to logs/<worker>.log.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { execa, type ResultPromise } from "execa";
import { resolvePath } from "../config/load.js";
import { WorkerStartError } from "../errors.js";
import { defaultPython } from "../util/project.js";
import { ServingStatus, WorkerClient } from "./clients.js";
import { localWorkerArgs } from "./local-args.js";
import type { ExitInfo, WorkerHandle, WorkerRuntime, WorkerStartRequest, WorkerState } from "./runtime.js";

const live = new Set<LocalWorker>();
let exitHookInstalled = false;

// Last line of defence: a worker never outlives the orchestrator (it also watches its parent).
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const w of live) w.kill();
  });
}

class LocalWorker implements WorkerHandle {
  state: WorkerState = "STARTING";
  address = "";
  readonly exited: Promise<ExitInfo>;
  private exit: ExitInfo | null = null;

  constructor(
    readonly name: string,
    readonly kind: WorkerHandle["kind"],
    readonly logPath: string,
    readonly runtimeInfo: Record<string, unknown>,
    private readonly proc: ResultPromise,
  ) {
    this.exited = proc.then(
      (r) => ({ exitCode: r.exitCode ?? null, signal: r.signal ?? null }),
      (e: { exitCode?: number; signal?: string }) => ({ exitCode: e.exitCode ?? null, signal: e.signal ?? null }),
    );
    void this.exited.then((info) => {
      this.exit = info;
      if (this.state !== "STOPPING") this.state = this.state === "STARTING" || this.state === "SERVING" ? "FAILED" : this.state;
      else this.state = "STOPPED";
      live.delete(this);
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  exitInfo(): ExitInfo | null {
    return this.exit;
  }

  private signalGroup(sig: NodeJS.Signals): void {
    if (this.exit || this.pid <= 0) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      // Already gone.
    }
  }

  kill(): void {
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

export class LocalRuntime implements WorkerRuntime {
  constructor(private readonly opts: { parentPid?: number; pollMs?: number } = {}) {}

  async start(req: WorkerStartRequest, signal?: AbortSignal): Promise<WorkerHandle> {
    const rt = req.config.runtime;
    const python = rt.python ? resolvePath(req.baseDir, rt.python) : defaultPython();
    if (!existsSync(python)) {
      throw new WorkerStartError(`worker '${req.name}': Python interpreter not found at ${python} (run the setup script, or set runtime.python)`);
    }
    const args = localWorkerArgs(req.config, { baseDir: req.baseDir, storeRoot: req.storeRoot, parentPid: this.opts.parentPid ?? process.pid });
    // Appended, never truncated: a resumed run keeps the log of the attempt before it.
    appendFileSync(req.logPath, `--- ${new Date().toISOString()} starting ${req.name}: ${python} ${args.slice(0, 5).join(" ")} ...\n`);
    const proc = execa(python, args, {
      detached: true,
      stdin: "ignore",
      stdout: "pipe",
      stderr: { file: req.logPath, append: true },
      buffer: false,
      reject: false,
      cleanup: true,
      env: { ...rt.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
      extendEnv: true,
    });
    const worker = new LocalWorker(req.name, req.config.kind, req.logPath, { type: "local", python, device: rt.device }, proc);
    installExitHook();
    live.add(worker);

    // The worker's stdout protocol: "listening" (with its address), then "serving" or "load_failed".
    let listening: string | undefined;
    let loadFailed: string | undefined;
    let buf = "";
    proc.stdout?.on("data", (chunk: Buffer) => {
      appendFileSync(req.logPath, chunk);
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const msg = JSON.parse(line) as { event?: string; address?: string; message?: string };
          if (msg.event === "listening" && msg.address) listening = msg.address;
          if (msg.event === "load_failed") loadFailed = msg.message ?? "model load failed";
        } catch {
          // Not a protocol line: it is only logged.
        }
      }
    });

    const timeoutMs = rt.start_timeout_s * 1000;
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
        if (Date.now() > deadline) return await fail(`did not become healthy within ${rt.start_timeout_s}s`);
        if (loadFailed) return await fail(`could not load its model: ${loadFailed}`);
        const exited = worker.exitInfo();
        if (exited) return await fail(`exited (${exited.signal ?? `code ${exited.exitCode}`}) before it was ready`, true);
        if (listening && !client) {
          worker.address = listening;
          client = new WorkerClient(req.name, listening);
        }
        if (client) {
          const status = await client.checkHealth(2000).catch(() => null);
          if (status === ServingStatus.SERVING) {
            worker.state = "SERVING";
            return worker;
          }
        }
        await sleep(this.opts.pollMs ?? 100);
      }
    } finally {
      client?.close();
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
