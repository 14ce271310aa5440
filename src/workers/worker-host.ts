// The warm worker host (python_workers/pds_dpo_workers/host.py): one Python process per
// interpreter that imports the model libraries once and forks each local worker from them.
// A forked worker is still its own process (own pid, process group, log and exit status);
// only the imports are shared. The host lives while it has workers; it exits when its stdin
// closes (the orchestrator's end, a SIGKILL included) and takes its workers with it.
import { appendFileSync } from "node:fs";
import { execa, type ResultPromise } from "execa";
import type { ExitInfo } from "./runtime.js";

/** What launchWorker needs of a worker's process, however it was started. */
export interface WorkerProcess {
  /** -1 until known (a forked worker's pid arrives from the host). */
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  onStdout(listener: (chunk: Buffer) => void): void;
  /** Signals the worker's process group (its own pid, once the group exists). */
  signalGroup(sig: NodeJS.Signals): void;
}

export function signalProcessGroup(pid: number, sig: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // No such group: gone, or a worker that makes its own group has not yet made it.
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  }
}

/** A spawned worker process (execa) as a WorkerProcess. */
export function spawnedProcess(proc: ResultPromise): WorkerProcess {
  const exited = proc.then(
    (r) => ({ exitCode: r.exitCode ?? null, signal: r.signal ?? null }),
    (e: { exitCode?: number; signal?: string }) => ({ exitCode: e.exitCode ?? null, signal: e.signal ?? null }),
  );
  return {
    get pid() {
      return proc.pid ?? -1;
    },
    exited,
    onStdout: (listener) => void proc.stdout?.on("data", listener),
    signalGroup: (sig) => signalProcessGroup(proc.pid ?? -1, sig),
  };
}

class HostedProcess implements WorkerProcess {
  pid = -1;
  done = false;
  readonly exited: Promise<ExitInfo>;
  settle!: (info: ExitInfo) => void;
  private listeners: ((chunk: Buffer) => void)[] = [];
  private exit: ExitInfo | null = null;
  // A signal sent before the host reported the pid: delivered when it does.
  private pending: NodeJS.Signals | null = null;

  constructor(readonly logPath: string) {
    this.exited = new Promise((resolve) => {
      this.settle = (info) => {
        if (this.exit) return;
        this.exit = info;
        this.done = true;
        resolve(info);
      };
    });
  }

  started(pid: number): void {
    this.pid = pid;
    if (this.pending) this.signalGroup(this.pending);
  }

  line(text: string): void {
    const chunk = Buffer.from(`${text}\n`);
    for (const l of this.listeners) l(chunk);
  }

  onStdout(listener: (chunk: Buffer) => void): void {
    this.listeners.push(listener);
  }

  signalGroup(sig: NodeJS.Signals): void {
    if (this.exit) return;
    if (this.pid <= 0) {
      if (this.pending !== "SIGKILL") this.pending = sig;
      return;
    }
    signalProcessGroup(this.pid, sig);
  }
}

export interface HostedStart {
  kind: string;
  /** The `pds_dpo_workers` argv of the worker ("serve", ...). */
  argv: string[];
  /** Set in the worker after the fork: variables nothing reads at import time. */
  env: Record<string, string>;
  logPath: string;
}

export class WorkerHost {
  private readonly proc: ResultPromise;
  private readonly workers = new Map<string, HostedProcess>();
  private seq = 0;
  private buf = "";
  private closed = false;

  /** `logPath` takes the host's own lines (what it imported, and how long that took); `storeRoot` names it in ps. */
  constructor(
    readonly python: string,
    storeRoot: string,
    env: Record<string, string>,
    logPath: string,
    private readonly onIdle: () => void,
  ) {
    appendFileSync(logPath, `--- ${new Date().toISOString()} starting the worker host: ${python} -m pds_dpo_workers host\n`);
    this.proc = execa(python, ["-m", "pds_dpo_workers", "host", "--store", storeRoot], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: { file: logPath, append: true },
      buffer: false,
      reject: false,
      cleanup: true,
      env,
      extendEnv: true,
    });
    this.proc.stdin?.on("error", () => {}); // a host that died: its exit says so
    this.proc.stdout?.on("data", (chunk: Buffer) => this.read(chunk));
    void this.proc.then((r) => {
      this.closed = true;
      // Its workers died with it (PR_SET_PDEATHSIG); the ones it did not report end here, their logs saying why.
      const gone = { exitCode: null, signal: r.signal ?? "SIGKILL" };
      for (const w of this.workers.values()) {
        if (!w.done) appendFileSync(w.logPath, `the worker host exited (${r.signal ?? `code ${r.exitCode}`}); its log: ${logPath}\n`);
        w.settle(gone);
      }
      this.workers.clear();
      this.onIdle();
    });
  }

  get alive(): boolean {
    return !this.closed;
  }

  start(req: HostedStart): WorkerProcess {
    const id = String(++this.seq);
    const worker = new HostedProcess(req.logPath);
    this.workers.set(id, worker);
    void worker.exited.then(() => {
      this.workers.delete(id);
      if (this.workers.size === 0) this.close();
    });
    if (this.closed) worker.settle({ exitCode: null, signal: "SIGKILL" });
    else this.proc.stdin!.write(`${JSON.stringify({ id, kind: req.kind, argv: req.argv, env: req.env, log: req.logPath })}\n`);
    return worker;
  }

  /** Ends the host (stdin EOF): it SIGKILLs any worker it still has, then exits. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onIdle();
    this.proc.stdin?.end();
  }

  private read(chunk: Buffer): void {
    this.buf += chunk.toString();
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const text = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let msg: { id?: string; event?: string; pid?: number; line?: string; code?: number | null; signal?: string | null };
      try {
        msg = JSON.parse(text);
      } catch {
        continue;
      }
      const w = msg.id !== undefined ? this.workers.get(msg.id) : undefined;
      if (!w) continue;
      if (msg.event === "started" && msg.pid) w.started(msg.pid);
      else if (msg.event === "exit") w.settle({ exitCode: msg.code ?? null, signal: msg.signal ?? null });
      else if (typeof msg.line === "string") w.line(msg.line);
    }
  }
}
