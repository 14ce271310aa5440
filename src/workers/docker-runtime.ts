// The `docker` runtime: the worker image of a kind, pinned to its digest when the worker
// starts, run with the store mounted at the same path, as the orchestrator's own uid:gid, GPUs
// and limits as configured, and its port published on loopback only. The engine is docker or
// podman (PDS_DPO_ENGINE): the same command lines. `run` forwards SIGTERM to the container.
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { hostname } from "node:os";
import { execa } from "execa";
import type { DockerRuntimeConfig, WorkerConfig } from "../config/schema.js";
import { WorkerStartError } from "../errors.js";
import { CONTAINER_PORT, OWNER_LABEL, dockerRunArgs, parseInspect, parsePort } from "./docker-args.js";
import { launchWorker } from "./process-worker.js";
import { RUN_TOKEN_ENV, runToken, type WorkerHandle, type WorkerRuntime, type WorkerStartRequest } from "./runtime.js";

export const ENGINES = ["docker", "podman"] as const;

/** The container engine: PDS_DPO_ENGINE (docker or podman; PDS_DPO_DOCKER, a path to either, still works), else docker. */
export function engineFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const e = env.PDS_DPO_ENGINE;
  if (e !== undefined && e !== "" && !(ENGINES as readonly string[]).includes(e)) throw new WorkerStartError(`PDS_DPO_ENGINE must be docker or podman, not '${e}'`);
  return e || env.PDS_DPO_DOCKER || "docker";
}

/** This orchestrator process, as the owner label (pdsdpo.owner) of its containers. */
export const CONTAINER_OWNER = `${hostname()}-${process.pid}-${randomBytes(4).toString("hex")}`;
const reapers = new Map<string, true>();

/**
 * A container outlives a SIGKILLed orchestrator (its `run` client dies, the engine keeps the
 * container). A small shell in a session of its own waits on a pipe from this process: when the
 * pipe closes, however this process ended, it removes every container this process owns.
 */
function startReaper(engine: string): void {
  if (reapers.has(engine)) return;
  reapers.set(engine, true);
  const script = 'read -r _; ids=$("$0" ps -aq --filter "label=$1"); [ -z "$ids" ] || "$0" rm --force $ids >/dev/null 2>&1';
  const child = spawn("sh", ["-c", script, engine, `${OWNER_LABEL}=${CONTAINER_OWNER}`], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
  child.on("error", () => undefined);
  child.unref();
  // The pipe's write end stays open, unreferenced, for as long as this process lives.
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
}

export class DockerRuntime implements WorkerRuntime {
  constructor(private readonly docker = engineFromEnv()) {}

  /** The image reference pinned to its digest (what the manifest records). */
  async pin(image: string): Promise<{ imageRef: string; digest: string }> {
    const r = await execa(this.docker, ["image", "inspect", "--format", "{{json .RepoDigests}}|{{.Id}}", image], { reject: false });
    if ((r as { code?: string }).code === "ENOENT") throw new WorkerStartError(`the container engine '${this.docker}' is not installed here (PDS_DPO_ENGINE: docker or podman)`);
    if (r.exitCode !== 0) throw new WorkerStartError(`docker image ${image} is not available here (${this.docker} image inspect: ${(r.stderr || r.stdout || String(r.exitCode)).split("\n")[0]}); pull or build it first (npm run images)`);
    try {
      return parseInspect(image, r.stdout);
    } catch (e) {
      throw new WorkerStartError((e as Error).message);
    }
  }

  async start(req: WorkerStartRequest, signal?: AbortSignal): Promise<WorkerHandle> {
    const rt = req.config.runtime;
    if (rt.type !== "docker") throw new WorkerStartError(`worker '${req.name}': not a docker runtime (${rt.type})`);
    const { imageRef, digest } = await this.pin(rt.image);
    const containerName = `pdsdpo-${req.name}-${randomBytes(4).toString("hex")}`;
    const token = runToken();
    startReaper(this.docker);
    const user = process.getuid && process.getgid ? `${process.getuid()}:${process.getgid()}` : undefined;
    const args = dockerRunArgs({ containerName, imageRef, digest, config: req.config as WorkerConfig & { runtime: DockerRuntimeConfig }, baseDir: req.baseDir, storeRoot: req.storeRoot, niceness: req.niceness, requires: req.requires, expectGpus: req.expectGpus, allowRoots: req.allowRoots, user, owner: CONTAINER_OWNER });
    return launchWorker(
      req,
      {
        file: this.docker,
        args,
        env: { [RUN_TOKEN_ENV]: token },
        token,
        runtimeInfo: { type: "docker", engine: this.docker, image: rt.image, image_ref: imageRef, image_digest: digest, container: containerName, gpus: rt.gpus ?? null, ...(req.niceness ? { nice: req.niceness } : {}) },
        startTimeoutS: rt.start_timeout_s,
        // The worker announces its in-container address; dial the loopback port the engine published.
        resolveAddress: async () => parsePort((await execa(this.docker, ["port", containerName, `${CONTAINER_PORT}/tcp`])).stdout),
        // A killed `run` client leaves its container running: remove it too, beside the kill (not
        // before it, so the client dies of the SIGKILL), and even when this process is exiting.
        onKill: () => spawn(this.docker, ["rm", "--force", containerName], { detached: true, stdio: "ignore" }).on("error", () => undefined).unref(),
      },
      signal,
    );
  }
}
