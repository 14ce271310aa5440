// The content-addressed cache through the real orchestrator, with test workers: an unchanged
// rerun makes no model call; a pair-policy-only change reuses every image and answer; another
// response scorer only scores; a damaged artifact is refused, recomputed, reported and
// repaired; an unchanged dataset reuses its training; --no-cache computes everything (and
// still journals); plan forecasts the hits; a worker without a weights hash is never cached.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../../src/store/cas.js";
import { cli, tempDir } from "../helpers.js";
import { Fleet, itemsOf, ofType, runIn, STAGE, workers, writeExperiment, type Manifest, type RunOutput } from "../support/fleet.js";
import { imagePrompts } from "../support/records.js";

const ALL = ["sd", "pick", "a", "b", "rm", "dpo"];

describe("content-addressed cache", { timeout: 30_000 }, () => {
  const dir = tempDir("pdsdpo-cache-");
  const store = join(dir, "store");
  let fleet: Fleet;
  const config = (maxSimilarity = 0.9) =>
    writeExperiment(dir, { workers: fleet.yaml(), prompts: 3, stages: [STAGE.images(), STAGE.responses({ pairs: `{drop_truncated: false, max_similarity: ${maxSimilarity}}` }), STAGE.train()].join("\n") });
  const run = async (runId: string, o: { maxSimilarity?: number; cache?: "off" } = {}) => {
    const before = fleet.callsByWorker();
    const r = await runIn(config(o.maxSimilarity), store, { runId, cache: o.cache });
    expect(r.status, String(r.error)).toBe("succeeded");
    const after = fleet.callsByWorker();
    return { ...r, calls: Object.fromEntries(Object.entries(after).map(([w, n]) => [w, n - before[w]!])) };
  };
  let first: RunOutput & { calls: Record<string, number> };
  const cacheOf = (m: Manifest, stage: string) => m.stages[stage]!.cache;

  beforeAll(async () => {
    fleet = await Fleet.start(store, workers(ALL));
    first = await run("first");
  });
  afterAll(() => fleet.stop());

  it("computes every item on the first run and journals it", () => {
    // 3 prompts x 2 scales: 6 images generated and 6 scored.
    expect(cacheOf(first.manifest, "images")).toEqual({ hits: 0, computed: 12, model_calls: expect.any(Number) });
    expect(cacheOf(first.manifest, "images")!.model_calls).toBeGreaterThan(0);
    // 3 kept images x 2 responders, each answer scored once.
    expect(cacheOf(first.manifest, "responses")).toMatchObject({ hits: 0, computed: 12 });
    expect(cacheOf(first.manifest, "train")).toEqual({ hits: 0, computed: 1, model_calls: 1 });
    // The counts are the workers' own: each model call reached a worker.
    expect(first.calls.sd! + first.calls.pick!).toBe(cacheOf(first.manifest, "images")!.model_calls);
    expect(first.calls.a! + first.calls.b! + first.calls.rm!).toBe(cacheOf(first.manifest, "responses")!.model_calls);
    expect(first.calls.dpo).toBe(1);
  });

  it("an unchanged rerun is all hits: no model call, the same dataset, adapter and step metrics", async () => {
    const again = await run("again");
    for (const stage of ["images", "responses", "train"]) expect(cacheOf(again.manifest, stage)).toEqual({ hits: itemsOf(first.manifest, stage), computed: 0, model_calls: 0 });
    expect(again.calls).toEqual({ sd: 0, pick: 0, a: 0, b: 0, rm: 0, dpo: 0 });
    // Every result event says it came from the journal.
    for (const type of ["image.generated", "image.scored", "response.generated", "response.scored", "train.step"]) {
      const events = ofType(again.events, type);
      expect(events.length, type).toBeGreaterThan(0);
      expect(events.every((e) => e.cached === true), type).toBe(true);
    }
    expect(again.manifest.outputs.dataset!.sha256).toBe(first.manifest.outputs.dataset!.sha256);
    expect(again.manifest.outputs.adapter_sha256).toBe(first.manifest.outputs.adapter_sha256);
    expect(readFileSync(join(again.runDir, "train/metrics.jsonl"), "utf8")).toBe(readFileSync(join(first.runDir, "train/metrics.jsonl"), "utf8"));
    // Workers are still started (their Describe proves the fingerprint).
    expect(ofType(again.events, "worker.ready").map((e) => e.worker).sort()).toEqual([...ALL].sort());
  });

  it("plan forecasts every item of images and responses as a hit", async () => {
    const plan = await cli(["plan", config(), "--store", store]);
    expect(plan.exitCode, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^stage images: .*model_items=12 cache_hits=12 to_compute=0$/m);
    const n = itemsOf(first.manifest, "responses");
    expect(plan.stdout).toMatch(new RegExp(`^stage responses: .*model_items=${n} cache_hits=${n} to_compute=0$`, "m"));
  });

  it("only the pair policy changed: no image or answer model call; the new dataset is trained on", async () => {
    const policy = await run("policy", { maxSimilarity: 0.95 });
    for (const stage of ["images", "responses"]) expect(cacheOf(policy.manifest, stage)).toEqual({ hits: itemsOf(first.manifest, stage), computed: 0, model_calls: 0 });
    expect(cacheOf(policy.manifest, "train")).toEqual({ hits: 0, computed: 1, model_calls: 1 });
    expect(policy.calls).toEqual({ sd: 0, pick: 0, a: 0, b: 0, rm: 0, dpo: 1 });
    // The dataset names its pair policy, so it is a new dataset.
    expect(policy.manifest.outputs.dataset!.sha256).not.toBe(first.manifest.outputs.dataset!.sha256);
  });

  it("a flipped byte in a stored image: refused with a warning, its batch recomputed, the store repaired, the rest reused", async () => {
    const kept = imagePrompts(first.runDir, first.manifest).find((p) => p.kept)!.kept!;
    const casPath = join(store, "cas", "sha256", kept.sha256.slice(0, 2), kept.sha256);
    const bytes = readFileSync(casPath);
    const middle = bytes.length >> 1;
    bytes[middle] = bytes[middle]! ^ 0xff;
    writeFileSync(casPath, bytes);

    const damaged = await run("damaged");
    expect(damaged.warnings.some((w) => new RegExp(`^cached image\\.generate of \\S+: artifact ${kept.sha256.slice(0, 12)} is missing or changed in the store; recomputing it$`).test(w)), damaged.warnings.join("\n")).toBe(true);
    const c = cacheOf(damaged.manifest, "images")!;
    expect(c.computed).toBeGreaterThan(0);
    expect(c.model_calls).toBeGreaterThan(0);
    // Only the generator batch that holds it (its scoring batch follows it), never all of them.
    expect(damaged.calls.sd).toBe(1);
    expect(c.hits).toBeGreaterThan(0);
    expect(sha256(readFileSync(casPath))).toBe(kept.sha256);
    expect(damaged.manifest.outputs.dataset!.sha256).toBe(first.manifest.outputs.dataset!.sha256);
    // The same dataset as the first run: its training is reused, step metrics included.
    expect(cacheOf(damaged.manifest, "train")).toEqual({ hits: 1, computed: 0, model_calls: 0 });
    expect(damaged.calls.dpo).toBe(0);
    expect(damaged.manifest.outputs.adapter_sha256).toBe(first.manifest.outputs.adapter_sha256);
    expect(readFileSync(join(damaged.runDir, "train/metrics.jsonl"), "utf8")).toBe(readFileSync(join(first.runDir, "train/metrics.jsonl"), "utf8"));
  });

  it("another response scorer: no image and no answer is made again, only the scores", async () => {
    fleet.setModel("rm", { source: "tiny", name: "reward", seed: 5 });
    try {
      const rescored = await run("scorer");
      expect(cacheOf(rescored.manifest, "images")).toMatchObject({ computed: 0, model_calls: 0 });
      const answered = ofType(rescored.events, "response.generated");
      expect(answered.length).toBeGreaterThan(0);
      expect(answered.every((e) => e.cached === true)).toBe(true);
      const scored = ofType(rescored.events, "response.scored");
      expect(scored.length).toBeGreaterThan(0);
      expect(scored.every((e) => e.cached === undefined)).toBe(true);
      expect(cacheOf(rescored.manifest, "responses")!.computed).toBe(scored.length);
      expect(rescored.calls).toMatchObject({ sd: 0, pick: 0, a: 0, b: 0 });
      expect(rescored.calls.rm).toBeGreaterThan(0);
    } finally {
      fleet.setModel("rm", { source: "tiny", name: "reward" });
    }
  });

  it("--no-cache computes every item, to the same dataset, and journals what it computed", async () => {
    const fresh = await run("fresh", { cache: "off" });
    expect(fresh.manifest.cache).toBe("off");
    for (const stage of ["images", "responses", "train"]) expect(cacheOf(fresh.manifest, stage)).toMatchObject({ hits: 0, computed: itemsOf(first.manifest, stage) });
    expect(fresh.manifest.outputs.dataset!.sha256).toBe(first.manifest.outputs.dataset!.sha256);
    expect(fresh.calls.sd).toBeGreaterThan(0);
    // The journal still records it: a run in a store that only a --no-cache run filled is all hits.
    const other = join(dir, "other");
    fleet.store = other;
    try {
      const off = await runIn(config(), other, { runId: "off", cache: "off" });
      expect(off.status).toBe("succeeded");
      const on = await runIn(config(), other, { runId: "on" });
      for (const stage of ["images", "responses", "train"]) expect(cacheOf(on.manifest, stage)).toMatchObject({ computed: 0, model_calls: 0 });
    } finally {
      fleet.store = store;
    }
  });
});

describe("a worker whose fingerprint cannot be known", { timeout: 30_000 }, () => {
  it("is never cached: each run calls it again, the other workers are reused", async () => {
    const dir = tempDir("pdsdpo-cache-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick"], { pick: { faults: { noWeightsHash: true } } }));
    try {
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 2, stages: STAGE.images() });
      const one = await runIn(config, store, { runId: "one" });
      expect(one.manifest.workers.pick!.fingerprint).toBeNull();
      const two = await runIn(config, store, { runId: "two" });
      // 4 images reused; their 4 scores computed again.
      expect(two.manifest.stages.images!.cache).toEqual({ hits: 4, computed: 4, model_calls: 1 });
      expect(fleet.calls("sd")).toBe(1);
      expect(fleet.calls("pick")).toBe(2);
    } finally {
      await fleet.stop();
    }
  });
});

describe("item failures and the journal", { timeout: 30_000 }, () => {
  it("a deterministic failure is journaled and reused; a transient one is computed again", async () => {
    const dir = tempDir("pdsdpo-cache-");
    const store = join(dir, "store");
    // art-001's images fail for a reason of their input (invalid_input), art-002's for a passing one (generation_failed).
    const fleet = await Fleet.start(store, workers(["sd", "pick"], { sd: { batch_size: 2 } }));
    try {
      fleet.worker("sd").faults = {
        itemError: (id) => (id.startsWith("art-001") ? { code: "invalid_input", message: "prompt is empty" } : id.startsWith("art-002") ? { code: "generation_failed", message: "RuntimeError: out of memory" } : undefined),
      };
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 3, stages: STAGE.images() });
      const one = await runIn(config, store, { runId: "one" });
      expect(one.status).toBe("succeeded");
      const errors = Object.fromEntries(ofType(one.events, "image.generated").filter((e) => e.error).map((e) => [(e.candidate as { id: string }).id, e.error]));
      expect(errors["art-001.gs5.n0"]).toEqual({ code: "invalid_input", message: "prompt is empty", deterministic: true });
      expect(errors["art-002.gs5.n0"]).toEqual({ code: "generation_failed", message: "RuntimeError: out of memory" });
      // Batches of 2: [art-001 x2] (both failed for good), [art-002 x2] (failed for now), [industrial-001 x2].
      const before = fleet.worker("sd").calls.length;
      const two = await runIn(config, store, { runId: "two" });
      const again = fleet.worker("sd").calls.slice(before).flatMap((c) => c.ids);
      expect(again).toEqual(["art-002.gs5.n0", "art-002.gs9.n0"]);
      expect(two.manifest.stages.images!.counts).toMatchObject({ failed: 4, kept: 1 });
    } finally {
      await fleet.stop();
    }
  });
});
