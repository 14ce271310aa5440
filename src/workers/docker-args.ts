// Pure: the argv of `docker run` for one worker, and the parsing of docker's answers.
// Arrays, never shell strings. The store is mounted at the same absolute path inside the
// container, so every path in a request (image roots, checkpoints) means the same there.
import type { DockerRuntimeConfig, WorkerConfig } from "../config/schema.js";
import { modelSpecJson, toModelSpec } from "./model-spec.js";
import { RUN_TOKEN_ENV } from "./runtime.js";

/** The port the worker images listen on (their ENTRYPOINT). */
export const CONTAINER_PORT = 50051;
/** Environment passed through by name only: docker reads the value from our environment, so it never appears in an argv or a log. */
export const PASSED_SECRETS = ["HF_TOKEN", "WANDB_API_KEY"];
/** Processes and threads a worker container may have (torch's thread pools, the trainer's ranks). */
export const PIDS_LIMIT = 4096;

export interface DockerRunInput {
  containerName: string;
  /** The image pinned by digest (repo@sha256:... or sha256:...). */
  imageRef: string;
  digest: string;
  config: WorkerConfig & { runtime: DockerRuntimeConfig };
  baseDir: string;
  storeRoot: string;
  /** Host directories of path models, mounted read-only at the same path. */
  readOnlyMounts?: string[];
  /** Lower CPU priority of the worker's model load (its load thread renices itself: no privilege needed). */
  niceness?: number;
  /** Optional packages the worker checks for before its load (requiredPackages). */
  requires?: string[];
  /** GPUs the worker must see (expectedGpus). */
  expectGpus?: number;
  /** Directories its requests may name, mounted read-only at the same path (allowedRoots). */
  allowRoots?: string[];
  /**
   * uid:gid the container runs as: the orchestrator's own, so that the worker can write into the
   * bind-mounted store and the orchestrator read what it wrote (the image's user, 10001, owns
   * neither side's files).
   */
  user?: string;
  /** The orchestrator process that owns the container (label pdsdpo.owner): its reaper removes them if it dies. */
  owner?: string;
}

/** The label naming the orchestrator process a container belongs to. */
export const OWNER_LABEL = "pdsdpo.owner";

export function dockerRunArgs(i: DockerRunInput): string[] {
  const rt = i.config.runtime;
  const spec = toModelSpec(i.config.model, i.baseDir);
  const args = ["run", "--rm", "--init", "--name", i.containerName, "--label", "pdsdpo.worker=true"];
  if (i.owner) args.push("--label", `${OWNER_LABEL}=${i.owner}`);
  if (i.user) args.push("--user", i.user);
  args.push("--publish", `127.0.0.1::${CONTAINER_PORT}`);
  // The orchestrator polls the worker's health itself; the image's HEALTHCHECK is for a bare
  // `docker run` (podman without systemd logs an error for every container that has one).
  args.push("--no-healthcheck");
  // Hardened: a read-only root (scratch in /tmp, caches on the store), no capabilities, no
  // privilege gain, a bounded number of processes.
  args.push("--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", String(PIDS_LIMIT));
  args.push("--volume", `${i.storeRoot}:${i.storeRoot}`);
  for (const m of [...(i.readOnlyMounts ?? (spec.path ? [spec.path] : [])), ...(i.allowRoots ?? [])]) args.push("--volume", `${m}:${m}:ro`);
  const gpus = rt.devices ?? rt.gpus;
  if (gpus !== undefined) args.push("--gpus", gpus === "all" ? "all" : `"device=${gpus.join(",")}"`);
  if (rt.cpus !== undefined) args.push("--cpus", String(rt.cpus));
  if (rt.memory !== undefined) args.push("--memory", rt.memory);
  if (rt.shm_size !== undefined) args.push("--shm-size", rt.shm_size);
  // Secrets and the per-run token by name: their values come from docker's own environment.
  for (const name of [...PASSED_SECRETS, RUN_TOKEN_ENV]) args.push("--env", name);
  for (const [k, v] of Object.entries(rt.env).sort(([a], [b]) => (a < b ? -1 : 1))) args.push("--env", `${k}=${v}`);
  // Caches in the store, which outlives the container: the hub's and the tiny models'.
  args.push("--env", `PDS_DPO_IMAGE_DIGEST=${i.digest}`, "--env", `HF_HOME=${i.storeRoot}/hf`, "--env", `PDS_DPO_TINY_CACHE=${i.storeRoot}/models/tiny`, "--env", "HOME=/tmp");
  // Served on the container's 0.0.0.0 without TLS (--insecure): published on the host's loopback
  // only, and every call but health must carry the per-run token.
  args.push(i.imageRef, "--model", modelSpecJson(spec), "--store", i.storeRoot, "--device", rt.device, "--token-env", RUN_TOKEN_ENV, "--insecure");
  if (rt.cpu_threads) args.push("--cpu-threads", String(rt.cpu_threads));
  if (i.niceness) args.push("--nice", String(i.niceness));
  for (const p of i.requires ?? []) args.push("--require", p);
  if (i.expectGpus) args.push("--expect-gpus", String(i.expectGpus));
  for (const r of i.allowRoots ?? []) args.push("--allow-root", r);
  return args;
}

/** `docker image inspect --format '{{json .RepoDigests}}|{{.Id}}'` -> the pinned reference and digest. */
export function parseInspect(image: string, out: string): { imageRef: string; digest: string } {
  const [digestsJson, id] = out.trim().split("|");
  const digests = JSON.parse(digestsJson || "null") as string[] | null;
  const repo = image.split("@")[0]!.replace(/:[^/:]+$/, "");
  const match = digests?.find((d) => d.startsWith(`${repo}@`)) ?? digests?.[0];
  if (match) return { imageRef: match, digest: match.slice(match.indexOf("@") + 1) };
  // A local build has no registry digest: its image id pins it just as well on this host
  // (docker prints it as sha256:<hex>, podman as the bare hex).
  if (id?.startsWith("sha256:")) return { imageRef: id, digest: id };
  if (id && /^[0-9a-f]{64}$/.test(id)) return { imageRef: `sha256:${id}`, digest: `sha256:${id}` };
  throw new Error(`cannot pin image ${image}: docker reported no digest`);
}

/** `docker port <name> 50051/tcp` -> host:port (first loopback binding). */
export function parsePort(out: string): string {
  const line = out.split("\n").map((l) => l.trim()).find((l) => l.startsWith("127.0.0.1:"));
  if (!line) throw new Error(`no loopback port binding in: ${out.trim()}`);
  return line;
}
