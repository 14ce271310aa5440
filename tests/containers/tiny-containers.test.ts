// configs/tiny-containers.yaml end to end on a real engine: every worker in its kind's image
// (llava-b in a second responder image), the store shared by bind mount. It gives what
// configs/tiny.yaml gives with local workers, item for item as replay compares runs; each
// worker's image digest is in the manifest, and a replay whose image is another exits 2.
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { EXACT, firstDifference } from "../../src/manifest/compare.js";
import type { Manifest } from "../../src/manifest/types.js";
import { cli, filesUnder, readJson, ROOT, tempDir, until } from "../helpers.js";
import { digestOf, ENGINE, ENGINE_ENV, ensureImages, image, workerContainers } from "./engine.js";

const WORKERS: Record<string, string> = { sd: "image-generator", pick: "image-scorer", "llava-a": "responder", "llava-b": "responder-ftfy", rm: "response-scorer", dpo: "dpo-trainer", pope: "evaluator" };

beforeAll(ensureImages, 40 * 60_000);

const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
/**
 * The dataset and the adapter's weights, by hash. (dataset/README.md names the experiment and run,
 * and adapter_config.json the store's path of the base model: those differ by design.)
 */
const OUTPUTS = ["dataset/pairs.jsonl", "dataset/llava.json", "train/adapter/adapter_model.safetensors"];
const outputs = (runDir: string) => Object.fromEntries(OUTPUTS.map((f) => [f, sha(join(runDir, f))]));

/**
 * A config of configs/ with its first PROMPTS prompts (stages.images.limit), beside a copy of its
 * prompts: the whole pipeline, every worker, at a cost a test suite can pay (the full tiny run in
 * containers takes over two minutes here).
 */
const PROMPTS = 4;
function limited(config: string): string {
  const dir = tempDir();
  copyFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), join(dir, "tiny.jsonl"));
  const text = readFileSync(join(ROOT, "configs", config), "utf8").replace("    prompts: prompts/tiny.jsonl\n", `    prompts: tiny.jsonl\n    limit: ${PROMPTS}\n`);
  expect(text).toContain(`limit: ${PROMPTS}`);
  writeFileSync(join(dir, config), text);
  return join(dir, config);
}

describe(`orchestrate run configs/tiny-containers.yaml (${ENGINE})`, () => {
  // Each run's time is printed: the container run takes longer (seven container starts).
  it("the same dataset and adapter as the local runtime; each image's digest in the manifest; files the host owns; no container left; replay of another image exits 2", { timeout: 900_000 }, async () => {
    const store = tempDir("pdsdpo-ctr-");
    let t0 = Date.now();
    const r = await cli(["run", limited("tiny-containers.yaml"), "--store", store, "--run-id", "c1"], { timeoutMs: 600_000, env: ENGINE_ENV });
    expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
    console.log(`containers: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const runDir = join(store, "runs", "c1");
    const m = readJson<Manifest>(join(runDir, "manifest.json"));
    expect(m.status).toBe("succeeded");

    // Each worker ran the image its config names, pinned to that image's digest; the two responders two images.
    for (const [w, img] of Object.entries(WORKERS)) {
      const rt = m.workers[w]!.runtime as Record<string, string>;
      expect(rt.type, w).toBe("docker");
      expect(rt.image, w).toBe(image(img));
      expect(rt.image_digest, w).toBe(digestOf(image(img)));
    }
    expect(m.workers["llava-a"]!.runtime!.image_digest).not.toBe(m.workers["llava-b"]!.runtime!.image_digest);

    // What the containers wrote into the store belongs to the orchestrator's user.
    for (const f of [...filesUnder(join(store, "cas")).slice(0, 50), join(runDir, "train/adapter/adapter_model.safetensors")]) expect(statSync(f).uid, f).toBe(process.getuid!());
    // This run's containers (the manifest names each) are gone once it ends, or within seconds of it
    // (a worker slow to stop is killed, and its container removed beside the kill).
    const ours = Object.keys(WORKERS).map((w) => (m.workers[w]!.runtime as Record<string, string>).container!);
    const left = () => workerContainers().filter((n) => ours.includes(n));
    expect(await until(() => left().length === 0, 30_000), `left: ${left().join(", ")}`).toBe(true);

    // The same experiment on local workers: every stage item for item (replay's comparison), the dataset and adapter byte for byte.
    const localStore = tempDir("pdsdpo-loc-");
    t0 = Date.now();
    const l = await cli(["run", limited("tiny.yaml"), "--store", localStore, "--run-id", "l1"], { timeoutMs: 600_000 });
    expect(l.exitCode, l.stderr.slice(-3000)).toBe(0);
    console.log(`local: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const localDir = join(localStore, "runs", "l1");
    const lm = readJson<Manifest>(join(localDir, "manifest.json"));
    // Item for item from both runs' records (their bytes differ where the workers' runtimes do).
    expect(firstDifference(lm, m, EXACT, { runDirs: { before: localDir, after: runDir } })).toBeNull();
    expect(m.outputs.adapter_sha256).toBe(lm.outputs.adapter_sha256);
    expect(outputs(runDir)).toEqual(outputs(localDir));

    // A replay pinned to another image for llava-b stops before it runs anything.
    const edited = readJson<Manifest>(join(runDir, "manifest.json"));
    (edited.workers["llava-b"]!.runtime as Record<string, string>).image_digest = `sha256:${"0".repeat(64)}`;
    const copy = join(tempDir(), "manifest.json");
    writeFileSync(copy, JSON.stringify(edited));
    const rp = await cli(["replay", copy, "--store", store], { timeoutMs: 60_000, env: ENGINE_ENV });
    expect(rp.exitCode, rp.stderr).toBe(2);
    expect(rp.stderr).toContain(`worker 'llava-b': image digest sha256:${"0".repeat(64)} is pinned but ${image("responder-ftfy")} is ${digestOf(image("responder-ftfy"))} here`);
  });
});
