// The `docker` runtime: the worker image of a kind, pinned to its digest when the worker
// starts, run with the store mounted at the same path, GPUs and limits as configured, and
// its port published on loopback only. `docker run` forwards SIGTERM to the container.
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { execa } from "execa";
import type { DockerRuntimeConfig, WorkerConfig } from "../config/schema.js";
import { WorkerStartError } from "../errors.js";
import { CONTAINER_PORT, dockerRunArgs, parseInspect, parsePort } from "./docker-args.js";
import { launchWorker } from "./process-worker.js";
import { RUN_TOKEN_ENV, runToken, type WorkerHandle, type WorkerRuntime, type WorkerStartRequest } from "./runtime.js";

export class DockerRuntime implements WorkerRuntime {
  constructor(private readonly docker = process.env.PDS_DPO_DOCKER ?? "docker") {}

  /** The image reference pinned to its digest (what the manifest records). */
  async pin(image: string): Promise<{ imageRef: string; digest: string }> {
    const r = await execa(this.docker, ["image", "inspect", "--format", "{{json .RepoDigests}}|{{.Id}}", image], { reject: false });
    if (r.exitCode !== 0) throw new WorkerStartError(`docker image ${image} is not available here (docker image inspect: ${(r.stderr || r.stdout || String(r.exitCode)).split("\n")[0]}); pull or build it first`);
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
    const args = dockerRunArgs({ containerName, imageRef, digest, config: req.config as WorkerConfig & { runtime: DockerRuntimeConfig }, baseDir: req.baseDir, storeRoot: req.storeRoot, niceness: req.niceness, requires: req.requires, expectGpus: req.expectGpus, allowRoots: req.allowRoots });
    return launchWorker(
      req,
      {
        file: this.docker,
        args,
        env: { [RUN_TOKEN_ENV]: token },
        token,
        runtimeInfo: { type: "docker", image: rt.image, image_ref: imageRef, image_digest: digest, container: containerName, gpus: rt.gpus ?? null, ...(req.niceness ? { nice: req.niceness } : {}) },
        startTimeoutS: rt.start_timeout_s,
        // The worker announces its in-container address; dial the loopback port docker published.
        resolveAddress: async () => parsePort((await execa(this.docker, ["port", containerName, `${CONTAINER_PORT}/tcp`])).stdout),
        // A killed `docker run` client leaves its container running: remove it too.
        onKill: () => void spawnSync(this.docker, ["rm", "--force", containerName], { stdio: "ignore", timeout: 20_000 }),
      },
      signal,
    );
  }
}
