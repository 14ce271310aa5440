import { describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { parseExperiment } from "../../src/config/load.js";
import { forkable, localWorkerArgs } from "../../src/workers/local-args.js";
import { allowedRoots, expectedGpus, requiredPackages } from "../../src/workers/requirements.js";

describe("localWorkerArgs", () => {
  it("builds the exact argv of a local worker", () => {
    const config = WorkerSchema.parse({
      kind: "image-generator",
      model: { source: "hf", id: "org/sd", revision: "abc123", dtype: "float16" },
      runtime: { type: "local", device: "cuda", cpu_threads: 2 },
    });
    expect(localWorkerArgs(config, { baseDir: "/cfg", storeRoot: "/store", parentPid: 42 })).toEqual([
      "-m", "pds_dpo_workers", "serve",
      "--kind", "image-generator",
      "--model", '{"source":"MODEL_SOURCE_HF","id":"org/sd","revision":"abc123","dtype":"float16"}',
      "--store", "/store",
      "--host", "127.0.0.1",
      "--port", "0",
      "--parent-pid", "42",
      "--own-process-group",
      "--token-env", "PDS_DPO_RUN_TOKEN",
      "--device", "cuda",
      "--cpu-threads", "2",
    ]);
  });

  it("resolves a path model against the config directory and passes tiny seeds and scorer types", () => {
    const path = WorkerSchema.parse({ kind: "image-scorer", model: { source: "path", path: "models/clip", type: "clip" } });
    expect(localWorkerArgs(path, { baseDir: "/cfg", storeRoot: "/s", parentPid: 1 })[6]).toBe(
      '{"source":"MODEL_SOURCE_PATH","id":"","path":"/cfg/models/clip","options":{"type":"clip"}}',
    );
    const tiny = WorkerSchema.parse({ kind: "image-generator", model: { source: "tiny", name: "sd", seed: 3 } });
    expect(localWorkerArgs(tiny, { baseDir: "/cfg", storeRoot: "/s", parentPid: 1 })[6]).toBe('{"source":"MODEL_SOURCE_TINY","id":"sd","seed":"3"}');
  });

  it("passes a lower CPU priority only when there is one", () => {
    const config = WorkerSchema.parse({ kind: "responder", model: { source: "tiny", name: "llava" } });
    const args = localWorkerArgs(config, { baseDir: "/cfg", storeRoot: "/s", parentPid: 1, niceness: 5 });
    expect(args.slice(-2)).toEqual(["--nice", "5"]);
    expect(localWorkerArgs(config, { baseDir: "/cfg", storeRoot: "/s", parentPid: 1, niceness: 0 })).not.toContain("--nice");
  });

  it("passes the options and packages the model needs: prompt format, custom code, bitsandbytes for 4-bit, deepspeed for ZeRO, the loggers of report_to", () => {
    const { config, issues } = parseExperiment(`name: t
workers:
  sd: {kind: image-generator, model: {source: tiny, name: sd}}
  pick: {kind: image-scorer, model: {source: tiny, name: clip-scorer}}
  a: {kind: responder, model: {source: tiny, name: llava-next, quantization: 4bit, prompt_format: raw}}
  rm: {kind: response-scorer, model: {source: tiny, name: armorm, trust_remote_code: true}}
  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava}}
stages:
  images: {prompts: p.jsonl, generator: sd, scorer: pick, guidance_scales: [5], steps: 2}
  responses: {responders: [a], scorer: rm}
  train: {trainer: dpo, lora: {r: 4, alpha: 8}, dpo: {beta: 0.1}, optim: {lr: 0.001}, gpus: 2, deepspeed: z.json, report_to: [tensorboard, wandb]}
`);
    expect(issues).toEqual([]);
    const args = (name: string) => localWorkerArgs(config!.workers[name]!, { baseDir: "/cfg", storeRoot: "/s", parentPid: 1, requires: requiredPackages(config!, name) });
    expect(args("a")[6]).toBe('{"source":"MODEL_SOURCE_TINY","id":"llava-next","quantization":"4bit","options":{"prompt_format":"raw"}}');
    expect(args("a").slice(-2)).toEqual(["--require", "bitsandbytes"]);
    expect(args("rm")[6]).toBe('{"source":"MODEL_SOURCE_TINY","id":"armorm","options":{"trust_remote_code":"true"}}');
    expect(args("rm")).not.toContain("--require");
    // Each logger of train.report_to is checked at the trainer's start (wandb is an optional extra).
    expect(args("dpo").slice(-8)).toEqual(["--require", "accelerate", "--require", "deepspeed", "--require", "tensorboard", "--require", "wandb"]);
    expect(requiredPackages(config!, "sd")).toEqual([]);
    // The GPUs each must see: none on auto, one per trainer process (train.gpus).
    expect(expectedGpus(config!, "a")).toBe(0);
    expect(expectedGpus(config!, "dpo")).toBe(2);
    expect(localWorkerArgs(config!.workers.dpo!, { baseDir: "/cfg", storeRoot: "/s", parentPid: 1, expectGpus: 2 }).slice(-2)).toEqual(["--expect-gpus", "2"]);
    // The only directories besides the store its requests may name: the DeepSpeed config's.
    expect(allowedRoots(config!, "dpo", "/cfg")).toEqual(["/cfg"]);
    expect(allowedRoots(config!, "a", "/cfg")).toEqual([]);
    expect(localWorkerArgs(config!.workers.dpo!, { baseDir: "/cfg", storeRoot: "/s", parentPid: 1, allowRoots: ["/cfg"] }).slice(-2)).toEqual(["--allow-root", "/cfg"]);
    // A tokenizer option: a hub reference as written, a directory resolved against the config's.
    const ir = (tokenizer: string) =>
      localWorkerArgs(WorkerSchema.parse({ kind: "image-scorer", model: { source: "hf", id: "THUDM/ImageReward", revision: "r", type: "image-reward", tokenizer } }), { baseDir: "/cfg", storeRoot: "/s", parentPid: 1 })[6]!;
    expect(JSON.parse(ir("google-bert/bert-base-uncased@abc")).options).toEqual({ type: "image-reward", tokenizer: "google-bert/bert-base-uncased@abc" });
    expect(JSON.parse(ir("tok/bert")).options.tokenizer).toBe("/cfg/tok/bert");
  });
});

describe("forkable", () => {
  const rt = (runtime: Record<string, unknown>) => WorkerSchema.parse({ kind: "responder", model: { source: "tiny", name: "llava" }, runtime: { type: "local", ...runtime } }).runtime;
  it("forks CPU workers whose runtime.env changes nothing of the orchestrator's environment", () => {
    expect(forkable(rt({ device: "cpu" }), {})).toBe(true);
    expect(forkable(rt({ device: "cpu", cpu_threads: 2, env: { HF_HOME: "/h" } }), { HF_HOME: "/h" })).toBe(true);
  });
  it("spawns the rest: another value of a variable, a GPU or an unresolved device, GPUs placed, another runtime", () => {
    expect(forkable(rt({ device: "cpu", env: { HF_HOME: "/other" } }), { HF_HOME: "/h" })).toBe(false);
    expect(forkable(rt({ device: "cpu", env: { OMP_NUM_THREADS: "1" } }), {})).toBe(false);
    expect(forkable(rt({ device: "cuda" }), {})).toBe(false);
    expect(forkable(rt({ device: "auto" }), {})).toBe(false);
    expect(forkable(rt({ device: "cpu", devices: [0] }), {})).toBe(false);
    expect(forkable({ type: "remote", endpoints: ["h:1"], token_env: "T", start_timeout_s: 1 } as never, {})).toBe(false);
  });
});
