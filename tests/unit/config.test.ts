import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadExperiment, parseExperiment } from "../../src/config/load.js";
import { ConfigError, formatIssue } from "../../src/errors.js";
import { MINIMAL_EXPERIMENT } from "../helpers.js";

const BASE = MINIMAL_EXPERIMENT;

function issues(text: string) {
  return parseExperiment(text).issues.map(formatIssue);
}

describe("experiment.yaml parsing", () => {
  it("accepts a valid config and fills defaults", () => {
    const { config, issues: found } = parseExperiment(BASE);
    expect(found).toEqual([]);
    expect(config?.seed_policy).toBe("derived");
    expect(config?.workers.sd?.runtime).toMatchObject({ type: "local", start_timeout_s: 300 });
    expect(config?.stages.images?.images_per_scale).toBe(1);
  });

  it("names an unknown key with its path and line", () => {
    const text = BASE.replace("    steps: 2\n", "    steps: 2\n    stpes: 3\n");
    expect(issues(text)).toEqual(["stages.images.stpes: unknown key (line 17)"]);
  });

  it("names a wrong type with its path and line", () => {
    const text = BASE.replace("guidance_scales: [5, 7]", "guidance_scales: [5, high]");
    expect(issues(text)).toEqual(["stages.images.guidance_scales[1]: expected number, received string (line 15)"]);
  });

  it("reports a missing required key at its parent's line", () => {
    const text = BASE.replace("    steps: 2\n", "");
    expect(issues(text)).toEqual(["stages.images.steps: required (expected number) (line 11)"]);
  });

  it("locates a YAML syntax error", () => {
    const text = BASE.replace("guidance_scales: [5, 7]", "guidance_scales: [5, 7");
    const found = issues(text);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^stages\.images.*: YAML syntax error: .* \(line 1[5-6]\)$/);
  });

  it("checks worker references and kinds", () => {
    expect(issues(BASE.replace("generator: sd", "generator: nope"))).toEqual([
      "stages.images.generator: no worker named 'nope' (workers: sd, pick) (line 13)",
    ]);
    expect(issues(BASE.replace("scorer: pick", "scorer: sd"))).toEqual([
      "stages.images.scorer: worker 'sd' is of kind image-generator; this needs kind image-scorer (line 14)",
    ]);
  });

  it("requires id and revision for hub models", () => {
    const text = BASE.replace("model: {source: tiny, name: sd}", "model: {source: hf, id: org/model}");
    expect(issues(text)).toEqual(["workers.sd.model.revision: required for source hf (pin a commit for reproducible runs) (line 6)"]);
  });

  it("rejects a model type or tiny twin its kind does not load, naming the key path", () => {
    expect(issues(BASE.replace("name: clip-scorer}", "name: clip-scorer, type: no-such-scorer}"))).toEqual([
      "workers.pick.model.type: unknown image-scorer model type 'no-such-scorer' (known: clip, image-reward) (line 9)",
    ]);
    expect(issues(BASE.replace("{source: tiny, name: sd}", "{source: tiny, name: sd4}"))).toEqual([
      expect.stringMatching(/^workers\.sd\.model\.name: unknown tiny model 'sd4' \(known: .*sd3, sdxl\) \(line 6\)$/),
    ]);
    expect(issues(BASE.replace("{source: tiny, name: sd}", "{source: tiny, name: armorm}"))).toEqual([
      "workers.sd.model.name: tiny model 'armorm' is not an image-generator model (it serves response-scorer) (line 6)",
    ]);
    expect(issues(BASE.replace("name: sd}", "name: sd, prompt_format: raw}"))).toEqual([
      "workers.sd.model.prompt_format: An image-generator takes no prompt_format (the responders, the evaluator and a VLM judge do) (line 6)",
    ]);
    // Every family of the paper's configuration is known.
    expect(issues(BASE.replace("name: clip-scorer}", "name: image-reward, type: image-reward}").replace("name: sd}", "name: sd3}"))).toEqual([]);
  });

  it("a train-only experiment: no images stage when the train stage names its own dataset; nothing that needs the images without them", () => {
    const trainOnly = (stages: string) => `name: t\nworkers:\n  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava}}\n  ev: {kind: evaluator, model: {source: tiny, name: llava}}\n  a: {kind: responder, model: {source: tiny, name: llava}}\n  rm: {kind: response-scorer, model: {source: tiny, name: reward}}\nstages:\n${stages}`;
    const train = "  train: {trainer: dpo, dataset: pairs.jsonl, lora: {r: 4, alpha: 8}, dpo: {beta: 0.1}, optim: {lr: 0.001}}\n";
    expect(issues(trainOnly(train))).toEqual([]);
    expect(issues(trainOnly(train.replace("dataset: pairs.jsonl, ", "")))).toEqual(["stages.images: required (or train on a dataset of your own: stages.train.dataset) (line 7)"]);
    expect(issues(trainOnly(`${train}  responses: {responders: [a], scorer: rm}\n`))).toEqual([
      "stages.responses: answers the images stage's images: add stages.images (line 9)",
      "stages.train.dataset: replaces the responses stage's pairs: train on one or the other (line 8)",
    ]);
    expect(issues(trainOnly(`${train}  evaluate: {evaluator: ev, benchmarks: [{type: smoke-pope, name: smoke}]}\n`))).toEqual([
      "stages.evaluate.benchmarks[0]: a smoke-pope is built from the images stage's images: add stages.images, or name a benchmark's files (line 9)",
    ]);
  });

  it("rejects an empty document and a non-mapping", () => {
    expect(issues("")[0]).toBe("name: required (expected string)");
    expect(issues("- a\n- b\n")).toEqual(["(document): expected object, received array (line 1)"]);
  });
});

describe("loadExperiment", () => {
  const dir = mkdtempSync(join(tmpdir(), "pdsdpo-config-"));
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const prompt = (id: string) => JSON.stringify({ id, category: "art", t2i_prompt: "a cat", instruction: "<image> what?" });

  it("loads prompts relative to the config file", () => {
    write("prompts.jsonl", `${prompt("a-1")}\n${prompt("a-2")}\n`);
    const loaded = loadExperiment(write("ok.yaml", BASE));
    expect([...loaded.prompts].map((p) => p.id)).toEqual(["a-1", "a-2"]);
    // Kept as the file's bytes, each prompt parsed when asked for, as it was checked at load.
    expect(loaded.prompts.at(1)).toEqual({ id: "a-2", category: expect.any(String), t2i_prompt: expect.any(String), instruction: expect.any(String) });
    expect(loaded.prompts.at(2)).toBeUndefined();
    // Read again from the file when asked: a file changed since it was checked is refused, not misread.
    write("prompts.jsonl", `${prompt("a-1")}\n${prompt("b-2")}\n`);
    expect(loaded.prompts.at(0)!.id).toBe("a-1");
    expect(() => loaded.prompts.at(1)).toThrow(/prompts\.jsonl changed since it was read \(prompt 2\); start a new run with the file as it is now/);
    expect(loaded.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("names a missing prompts file with the key's line", () => {
    const file = write("missing.yaml", BASE.replace("prompts.jsonl", "nope.jsonl"));
    try {
      loadExperiment(file);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).message).toBe(`stages.images.prompts: file not found: ${join(dir, "nope.jsonl")} (line 12)`);
    }
  });

  it("names bad prompt lines and duplicate ids", () => {
    write("bad.jsonl", `${prompt("a-1")}\nnot json\n${prompt("a-1")}\n{"id":"x"}\n`);
    try {
      loadExperiment(write("bad.yaml", BASE.replace("prompts.jsonl", "bad.jsonl")));
      expect.unreachable();
    } catch (e) {
      const lines = (e as ConfigError).message.split("\n");
      expect(lines).toHaveLength(3);
      expect(lines[0]).toContain("bad.jsonl:2: not valid JSON");
      expect(lines[1]).toContain("bad.jsonl:3: duplicate id a-1 (first on line 1)");
      expect(lines[2]).toMatch(/bad\.jsonl:4: category: .*required|bad\.jsonl:4: category/);
    }
  });

  it("names every other file the config names that does not exist, before anything runs", () => {
    write("prompts.jsonl", `${prompt("a-1")}\n`);
    const text = BASE.replace("    model: {source: tiny, name: sd}\n", "    model: {source: tiny, name: sd}\n    runtime: {type: local, python: venv/bin/python}\n").concat(
      [
        "  train: {trainer: dpo, lora: {r: 4, alpha: 8}, dpo: {beta: 0.1}, optim: {lr: 0.001}, deepspeed: zero2.json}",
        "  evaluate: {evaluator: ev, benchmarks: [{name: pope, splits: {random: pope/random.json}, image_root: coco}]}",
        "",
      ].join("\n"),
    ).replace("stages:\n", "  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava}}\n  ev: {kind: evaluator, model: {source: tiny, name: llava}}\nstages:\n");
    try {
      loadExperiment(write("files.yaml", text));
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).message.split("\n")).toEqual([
        `workers.sd.runtime.python: Python interpreter not found: ${join(dir, "venv/bin/python")} (line 7)`,
        `stages.train.deepspeed: DeepSpeed config not found: ${join(dir, "zero2.json")} (line 21)`,
        `stages.evaluate.benchmarks[0].splits.random: pope random question file not found: ${join(dir, "pope/random.json")} (line 22)`,
        `stages.evaluate.benchmarks[0].image_root: pope image directory not found: ${join(dir, "coco")} (line 22)`,
      ]);
    }
  });

  it("train.report_to names tensorboard or wandb, each once", () => {
    const train = (reportTo: string) => `${BASE.replace("stages:\n", "  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava}}\nstages:\n")}  train: {trainer: dpo, lora: {r: 4, alpha: 8}, dpo: {beta: 0.1}, optim: {lr: 0.001}, report_to: ${reportTo}}\n`;
    expect(issues(train("[tensorboard, wandb]"))).toEqual([]);
    expect(issues(train("[mlflow]"))).toEqual([expect.stringMatching(/^stages\.train\.report_to\[0\]: .*\"tensorboard\".*\"wandb\"/)]);
    expect(issues(train("[wandb, wandb]"))).toEqual([expect.stringMatching(/^stages\.train\.report_to: each logger once/)]);
  });

  it("a DeepSpeed config that is not JSON, or has no ZeRO stage, is refused at validate", () => {
    write("prompts.jsonl", `${prompt("a-1")}\n`);
    const text = (file: string) =>
      `${BASE.replace("stages:\n", "  dpo: {kind: dpo-trainer, model: {source: tiny, name: llava}}\nstages:\n")}  train: {trainer: dpo, lora: {r: 4, alpha: 8}, dpo: {beta: 0.1}, optim: {lr: 0.001}, gpus: 2, deepspeed: ${file}}\n`;
    writeFileSync(join(dir, "broken.json"), "{ not json");
    writeFileSync(join(dir, "nozero.json"), JSON.stringify({ train_batch_size: 2 }));
    writeFileSync(join(dir, "zero2.json"), JSON.stringify({ zero_optimization: { stage: 2 } }));
    expect(() => loadExperiment(write("ds1.yaml", text("broken.json")))).toThrow(/^stages\.train\.deepspeed: .*broken\.json: not valid JSON \(.*\) \(line 19\)$/);
    expect(() => loadExperiment(write("ds2.yaml", text("nozero.json")))).toThrow(/nozero\.json: zero_optimization\.stage must be 0, 1 or 2/);
    expect(loadExperiment(write("ds3.yaml", text("zero2.json"))).config.stages.train!.deepspeed).toBe("zero2.json");
  });

  it("warns, without failing, about a hub revision that is not a commit (a model's or a tokenizer's)", () => {
    const sha = "0123456789abcdef0123456789abcdef01234567";
    const hf = (rev: string, tok = sha) =>
      BASE.replace("model: {source: tiny, name: sd}", `model: {source: hf, id: org/sd, revision: ${rev}}`).replace(
        "model: {source: tiny, name: clip-scorer}",
        `model: {source: hf, id: THUDM/ImageReward, revision: ${sha}, type: image-reward, tokenizer: google-bert/bert-base-uncased@${tok}}`,
      );
    expect(loadExperiment(write("pinned.yaml", hf(sha))).warnings).toEqual([]);
    expect(loadExperiment(write("main.yaml", hf("main", "v1.0"))).warnings.map(formatIssue)).toEqual([
      "workers.sd.model.revision: 'main' is not a commit sha: the hub may serve other weights tomorrow; pin the 40-hex commit for reproducible runs (line 6)",
      "workers.pick.model.tokenizer: 'v1.0' is not a commit sha: the hub may serve other weights tomorrow; pin the 40-hex commit for reproducible runs (line 9)",
    ]);
    // A tokenizer that is no hub reference is a directory, checked like every other file.
    expect(() => loadExperiment(write("tokdir.yaml", BASE.replace("name: clip-scorer}", "name: clip-scorer, tokenizer: bert-tok}")))).toThrow(
      `workers.pick.model.tokenizer: tokenizer directory not found: ${join(dir, "bert-tok")} (line 9)`,
    );
  });

  it("names a missing config file", () => {
    expect(() => loadExperiment(join(dir, "absent.yaml"))).toThrow(/config file not found/);
  });
});

describe("secrets", () => {
  it("refuses secrets written into a runtime's env: they come from the environment", () => {
    const text = BASE.replace("    model: {source: tiny, name: sd}\n", "    model: {source: tiny, name: sd}\n    runtime: {type: local, env: {HF_TOKEN: hf_abc, OMP_NUM_THREADS: '1'}}\n");
    expect(issues(text)).toEqual(["workers.sd.runtime.env.HF_TOKEN: looks like a secret; secrets come from the environment (export HF_TOKEN), never from the config (line 7)"]);
  });
});

describe("decoding", () => {
  it("several samples need sampling", () => {
    const withResponses = (decoding: string) =>
      `${BASE.replace("stages:\n", "  a: {kind: responder, model: {source: tiny, name: llava}}\n  rm: {kind: response-scorer, model: {source: tiny, name: reward}}\nstages:\n")}  responses: {responders: [a], scorer: rm, decoding: ${decoding}}\n`;
    expect(issues(withResponses("{num_samples: 2}"))).toEqual(["stages.responses.decoding.num_samples: several samples need do_sample: true (line 20)"]);
    expect(issues(withResponses("{num_samples: 2, do_sample: true}"))).toEqual([]);
  });
});
