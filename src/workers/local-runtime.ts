// The `local` runtime: `python -m pds_dpo_workers serve` from the project's venv (or
// runtime.python), on a free loopback port that it announces on stdout. Workers that may be
// forked (forkable) come from one warm host per interpreter instead of a fresh interpreter each.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { resolvePath } from "../config/load.js";
import { WorkerStartError } from "../errors.js";
import { defaultPython } from "../util/project.js";
import { forkable, localWorkerArgs } from "./local-args.js";
import { launchWorker } from "./process-worker.js";
import { RUN_TOKEN_ENV, runToken, type WorkerHandle, type WorkerRuntime, type WorkerStartRequest } from "./runtime.js";
import { WorkerHost } from "./worker-host.js";

// What the host and every worker process get besides the orchestrator's environment.
const PYTHON_ENV = { PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" };

export class LocalRuntime implements WorkerRuntime {
  private readonly hosts = new Map<string, WorkerHost>();

  /** `host: false` spawns every worker (default: PDS_DPO_WORKER_HOST=0 in the environment says so too). */
  constructor(private readonly opts: { parentPid?: number; pollMs?: number; host?: boolean } = {}) {}

  private hostFor(python: string, storeRoot: string, logDir: string): WorkerHost {
    const key = `${python}\0${storeRoot}`;
    let host = this.hosts.get(key);
    if (!host?.alive) {
      const h: WorkerHost = new WorkerHost(python, storeRoot, PYTHON_ENV, join(logDir, "worker-host.log"), () => {
        if (this.hosts.get(key) === h) this.hosts.delete(key);
      });
      this.hosts.set(key, (host = h));
    }
    return host;
  }

  async start(req: WorkerStartRequest, signal?: AbortSignal): Promise<WorkerHandle> {
    const rt = req.config.runtime;
    if (rt.type !== "local") throw new WorkerStartError(`worker '${req.name}': not a local runtime (${rt.type})`);
    const python = rt.python ? resolvePath(req.baseDir, rt.python) : defaultPython();
    if (!existsSync(python)) {
      throw new WorkerStartError(`worker '${req.name}': Python interpreter not found at ${python} (run the setup script, or set runtime.python)`);
    }
    const token = runToken();
    const host = (this.opts.host ?? process.env.PDS_DPO_WORKER_HOST !== "0") && forkable(rt, process.env) ? this.hostFor(python, req.storeRoot, dirname(req.logPath)) : undefined;
    const args = localWorkerArgs(req.config, { baseDir: req.baseDir, storeRoot: req.storeRoot, parentPid: this.opts.parentPid ?? process.pid, niceness: req.niceness, requires: req.requires, expectGpus: req.expectGpus, allowRoots: req.allowRoots });
    return launchWorker(
      req,
      {
        file: python,
        args,
        // runtime.devices: the GPUs it sees (as 0..n-1 inside).
        env: { ...rt.env, ...(rt.devices ? { CUDA_VISIBLE_DEVICES: rt.devices.join(",") } : {}), [RUN_TOKEN_ENV]: token, ...PYTHON_ENV },
        token,
        runtimeInfo: { type: "local", python, device: rt.device, started: host ? "forked" : "spawned", ...(rt.devices ? { devices: rt.devices } : {}), ...(req.niceness ? { nice: req.niceness } : {}) },
        startTimeoutS: rt.start_timeout_s,
        pollMs: this.opts.pollMs,
        ownSession: false,
        host,
      },
      signal,
    );
  }
}
