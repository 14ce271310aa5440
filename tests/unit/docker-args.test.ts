import { describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { dockerRunArgs, parseInspect, parsePort } from "../../src/workers/docker-args.js";
import { DockerRuntime, engineFromEnv } from "../../src/workers/docker-runtime.js";

const worker = (runtime: Record<string, unknown>, model: Record<string, unknown> = { source: "hf", id: "stabilityai/sd3", revision: "abc123", dtype: "float16" }) =>
  WorkerSchema.parse({ kind: "image-generator", model, runtime: { type: "docker", image: "reg.example/pds-dpo-image-generator:1.0", ...runtime } }) as never;

describe("docker runtime argv", () => {
  it("snapshot: GPUs, limits, store at the same path, loopback port, secrets by name only", () => {
    const args = dockerRunArgs({
      containerName: "pdsdpo-sd-1a2b",
      imageRef: "reg.example/pds-dpo-image-generator@sha256:feed",
      digest: "sha256:feed",
      config: worker({ gpus: [0, 1], cpus: 8, memory: "32g", shm_size: "8g", device: "cuda", env: { B: "2", A: "1" } }),
      baseDir: "/cfg",
      storeRoot: "/data/store",
    });
    expect(args).toEqual([
      "run", "--rm", "--init", "--name", "pdsdpo-sd-1a2b", "--label", "pdsdpo.worker=true",
      "--publish", "127.0.0.1::50051", "--no-healthcheck",
      "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", "4096",
      "--volume", "/data/store:/data/store",
      "--gpus", '"device=0,1"',
      "--cpus", "8", "--memory", "32g", "--shm-size", "8g",
      "--env", "HF_TOKEN", "--env", "WANDB_API_KEY", "--env", "PDS_DPO_RUN_TOKEN",
      "--env", "A=1", "--env", "B=2",
      "--env", "PDS_DPO_IMAGE_DIGEST=sha256:feed", "--env", "HF_HOME=/data/store/hf", "--env", "PDS_DPO_TINY_CACHE=/data/store/models/tiny", "--env", "HOME=/tmp",
      "reg.example/pds-dpo-image-generator@sha256:feed",
      "--model", '{"source":"MODEL_SOURCE_HF","id":"stabilityai/sd3","revision":"abc123","dtype":"float16"}',
      "--store", "/data/store",
      "--device", "cuda",
      "--token-env", "PDS_DPO_RUN_TOKEN", "--insecure",
    ]);
  });

  it("mounts a path model read-only at its own path, and gpus all", () => {
    const args = dockerRunArgs({
      containerName: "c",
      imageRef: "sha256:1",
      digest: "sha256:1",
      config: worker({ gpus: "all" }, { source: "path", path: "models/sd" }),
      baseDir: "/cfg",
      storeRoot: "/s",
    });
    expect(args.slice(args.indexOf("--volume"), args.indexOf("--volume") + 4)).toEqual(["--volume", "/s:/s", "--volume", "/cfg/models/sd:/cfg/models/sd:ro"]);
    expect(args[args.indexOf("--gpus") + 1]).toBe("all");
    expect(args.join(" ")).not.toMatch(/HF_TOKEN=/);
  });

  it("passes cpu_threads to the worker, as a local worker's; a bad PDS_DPO_ENGINE is named", () => {
    const args = dockerRunArgs({ containerName: "c", imageRef: "sha256:1", digest: "sha256:1", config: worker({ cpu_threads: 2 }), baseDir: "/cfg", storeRoot: "/s" });
    expect(args.slice(args.indexOf("--cpu-threads"), args.indexOf("--cpu-threads") + 2)).toEqual(["--cpu-threads", "2"]);
    expect(args.indexOf("--cpu-threads")).toBeGreaterThan(args.indexOf("sha256:1"));
    expect(engineFromEnv({ PDS_DPO_ENGINE: "podman" })).toBe("podman");
    expect(engineFromEnv({})).toBe("docker");
    expect(() => engineFromEnv({ PDS_DPO_ENGINE: "rkt" })).toThrow("PDS_DPO_ENGINE must be docker or podman, not 'rkt'");
  });

  it("an engine that is not installed is named", async () => {
    await expect(new DockerRuntime("/nonexistent/podman").pin("pds-dpo-responder:dev")).rejects.toThrow("the container engine '/nonexistent/podman' is not installed here (PDS_DPO_ENGINE: docker or podman)");
  });

  it("runs as the given uid:gid and labels the container with its owner, before the port", () => {
    const args = dockerRunArgs({ containerName: "c", imageRef: "sha256:1", digest: "sha256:1", config: worker({}), baseDir: "/cfg", storeRoot: "/s", user: "1000:1000", owner: "host-42-ab" });
    expect(args.slice(0, 13)).toEqual(["run", "--rm", "--init", "--name", "c", "--label", "pdsdpo.worker=true", "--label", "pdsdpo.owner=host-42-ab", "--user", "1000:1000", "--publish", "127.0.0.1::50051"]);
  });

  it("passes a lower CPU priority to the worker's own argv, after the image", () => {
    const base = { containerName: "c", imageRef: "sha256:1", digest: "sha256:1", config: worker({}), baseDir: "/cfg", storeRoot: "/s" };
    const args = dockerRunArgs({ ...base, niceness: 10 });
    expect(args.slice(-2)).toEqual(["--nice", "10"]);
    expect(args.indexOf("--nice")).toBeGreaterThan(args.indexOf("sha256:1"));
    expect(dockerRunArgs(base)).not.toContain("--nice");
  });

  it("pins images by registry digest, or by id for a local build", () => {
    expect(parseInspect("reg/x:1", '["reg/x@sha256:aa","other/x@sha256:bb"]|sha256:cc')).toEqual({ imageRef: "reg/x@sha256:aa", digest: "sha256:aa" });
    expect(parseInspect("x:dev", "null|sha256:cc")).toEqual({ imageRef: "sha256:cc", digest: "sha256:cc" });
    // podman prints a local image's id without the algorithm.
    const hex = "ab".repeat(32);
    expect(parseInspect("x:dev", `[]|${hex}`)).toEqual({ imageRef: `sha256:${hex}`, digest: `sha256:${hex}` });
    expect(() => parseInspect("x", "[]|")).toThrow(/cannot pin image x/);
  });

  it("reads the loopback port docker published", () => {
    expect(parsePort("127.0.0.1:49153\n")).toBe("127.0.0.1:49153");
    expect(() => parsePort("0.0.0.0:49153")).toThrow(/no loopback port/);
  });

  it("validates docker runtime settings", () => {
    expect(() => worker({ memory: "lots" })).toThrow();
    expect(() => worker({ gpus: [] })).toThrow();
    expect(() => worker({ gpus: [0], devices: [1] })).toThrow(/set devices or gpus, not both/);
  });

  it("places the container on its runtime.devices and has the worker check it sees that many GPUs", () => {
    const args = dockerRunArgs({ containerName: "c", imageRef: "sha256:1", digest: "sha256:1", config: worker({ devices: [2, 3], device: "cuda" }), baseDir: "/cfg", storeRoot: "/s", expectGpus: 2 });
    expect(args[args.indexOf("--gpus") + 1]).toBe('"device=2,3"');
    expect(args.slice(-2)).toEqual(["--expect-gpus", "2"]);
  });
});
