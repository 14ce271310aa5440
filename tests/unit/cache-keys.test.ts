import { describe, expect, it } from "vitest";
import { batchKeys, canonicalJson, digest, itemKey, workerFingerprint, type WorkerFingerprint } from "../../src/plan/cache-keys.js";
import type { Decoding } from "../../src/gen/pdsdpo/v1/responder.js";
import { forecastHits, type ForecastInput } from "../../src/plan/cache-forecast.js";
import { planImages } from "../../src/plan/image-plan.js";
import { generateKeys, imageScoreKeys, respondKeys, responseScoreKeys } from "../../src/plan/item-keys.js";

const FP: WorkerFingerprint = {
  kind: "WORKER_KIND_IMAGE_GENERATOR",
  model: { spec: { source: "MODEL_SOURCE_TINY", id: "sd" }, resolvedRevision: "tiny-v3", weightsSha256: "a".repeat(64) },
  device: "cpu:x86_64",
  threads: 1,
  protocolVersion: "1",
  environment: "python:abc",
};

describe("canonicalJson", () => {
  it("sorts keys at every level and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[1,{"y":2,"z":1}]},"b":1}');
    expect(digest({ x: 1, y: 2 })).toBe(digest({ y: 2, x: 1 }));
  });

  it("refuses non-finite numbers (they have no JSON form)", () => {
    expect(() => canonicalJson({ s: Number.NaN })).toThrow(/non-finite/);
  });
});

describe("workerFingerprint", () => {
  const info = {
    kind: "WORKER_KIND_RESPONDER",
    model: { spec: { id: "m" }, resolvedRevision: "r", weightsSha256: "w" },
    device: { type: "cpu", name: "x" },
    protocolVersion: "1",
    pythonEnvHash: "env",
  };

  it("holds model, revision, weights, device, environment and protocol", () => {
    expect(workerFingerprint(info, { type: "local" }, 2)).toEqual({
      kind: "WORKER_KIND_RESPONDER",
      model: { spec: { id: "m" }, resolvedRevision: "r", weightsSha256: "w" },
      device: "cpu:x",
      threads: 2,
      protocolVersion: "1",
      environment: "python:env",
    });
  });

  it("prefers the docker image digest to the Python environment", () => {
    expect(workerFingerprint(info, { type: "docker", image_digest: "sha256:d" })?.environment).toBe("image:sha256:d");
  });

  it("is null when a part cannot be known: such items are never cached", () => {
    expect(workerFingerprint({ ...info, model: { spec: {}, resolvedRevision: "r", weightsSha256: "" } }, {})).toBeNull();
    expect(workerFingerprint({ ...info, pythonEnvHash: "" }, {})).toBeNull();
    expect(workerFingerprint({ ...info, protocolVersion: "" }, {})).toBeNull();
  });
});

describe("cache keys", () => {
  const parts = { op: "image.generate", params: { seed: 1 }, worker: FP, inputs: [], batch: "b" };

  it("change with every part", () => {
    const base = itemKey(parts);
    expect(itemKey({ ...parts })).toBe(base);
    expect(itemKey({ ...parts, op: "image.score" })).not.toBe(base);
    expect(itemKey({ ...parts, params: { seed: 2 } })).not.toBe(base);
    expect(itemKey({ ...parts, inputs: ["f".repeat(64)] })).not.toBe(base);
    expect(itemKey({ ...parts, batch: "c" })).not.toBe(base);
    expect(itemKey({ ...parts, worker: { ...FP, model: { ...FP.model, weightsSha256: "b".repeat(64) } } })).not.toBe(base);
    expect(itemKey({ ...parts, worker: { ...FP, environment: "image:sha256:x" } })).not.toBe(base);
  });

  it("depend on the whole batch: the same item in another batch is another key", () => {
    const a = { params: { seed: 1 }, inputs: [] };
    const b = { params: { seed: 2 }, inputs: [] };
    expect(batchKeys("op", FP, [a, b])[0]).not.toBe(batchKeys("op", FP, [a])[0]);
    expect(batchKeys("op", FP, [a, b])).toEqual(batchKeys("op", FP, [a, b]));
  });

  it("are null for every item of a worker without a fingerprint", () => {
    const candidates = planImages({ prompts: "p", generator: "g", scorer: "s", guidance_scales: [5], images_per_scale: 1, steps: 2, size: 64, negative_prompt: "" } as never, [{ id: "p1", index: 0, t2i_prompt: "a", instruction: "i", category: "c" }] as never, 1, "derived");
    expect(generateKeys(null, candidates)).toEqual([{ id: candidates[0]!.id, key: null }]);
  });
});

describe("forecastHits", () => {
  const prompts = [0, 1].map((i) => ({ id: `p${i}`, index: i, t2i_prompt: `prompt ${i}`, instruction: `<image>\nq${i}`, category: "c" }));
  const candidates = planImages({ prompts: "p", generator: "g", scorer: "s", guidance_scales: [5, 9], images_per_scale: 1, steps: 2, size: 64, negative_prompt: "" } as never, prompts as never, 1, "derived");
  const decoding: Decoding = { maxNewTokens: 8, doSample: false, temperature: 0, topP: 0, topK: 0, repetitionPenalty: 0, numSamples: 1 };
  const w = (name: string, batchSize: number) => ({ name, fingerprint: { ...FP, kind: name }, batchSize });
  const input = (lookup: Map<string, unknown>): ForecastInput => ({
    seed: 1,
    candidates,
    generator: w("sd", 2),
    scorer: w("pick", 4),
    responses: { responders: [w("a", 8)], scorers: [w("rm", 16)], decoding, questionOf: (s) => s.replace("<image>\n", "") },
    lookup: (k) => lookup.get(k),
  });
  const sha = (c: string) => c.repeat(64);

  it("counts nothing from an empty journal", () => {
    const f = forecastHits(input(new Map()));
    expect(f.images).toEqual({ items: 8, hits: 0, toCompute: 8 });
    expect(f.responses!.hits).toBe(0);
  });

  it("walks a fully journaled run through to the responses", () => {
    const j = new Map<string, unknown>();
    const gen = [candidates.slice(0, 2), candidates.slice(2, 4)];
    gen.forEach((chunk, k) => generateKeys(w("sd", 2).fingerprint, chunk).forEach((it, i) => j.set(it.key!, { artifact: { sha256: sha(String(k * 2 + i)) }, defects: [] })));
    const scoreBatch = candidates.map((c, i) => ({ candidate: c, sha256: sha(String(i)) }));
    imageScoreKeys(w("pick", 4).fingerprint, scoreBatch).forEach((it, i) => j.set(it.key!, { id: it.id, score: i }));
    // Best of each prompt: the higher index (gs9) wins.
    let f = forecastHits(input(j));
    expect(f.images).toEqual({ items: 8, hits: 8, toCompute: 0 });
    expect(f.responses).toEqual({ items: 4, hits: 0, toCompute: 4 });

    const kept = [1, 3].map((i) => ({ promptId: candidates[i]!.promptId, instruction: prompts[i === 1 ? 0 : 1]!.instruction, imageSha256: sha(String(i)) }));
    respondKeys(w("a", 8).fingerprint, 1, "a", decoding, kept).forEach((it, i) => j.set(it.key!, [{ sampleIndex: 0, text: `answer ${i}`, numTokens: 2, finishReason: "stop" }]));
    f = forecastHits(input(j));
    expect(f.responses).toEqual({ items: 4, hits: 2, toCompute: 2 });

    const answers = kept.map((k, i) => ({ answerId: `${k.promptId}.a.s0`, question: k.instruction.replace("<image>\n", ""), answer: `answer ${i}`, imageSha256: k.imageSha256 }));
    responseScoreKeys(w("rm", 16).fingerprint, "rm", answers).forEach((it) => j.set(it.key!, { id: it.id, score: 1 }));
    expect(forecastHits(input(j)).responses).toEqual({ items: 4, hits: 4, toCompute: 0 });
  });

  it("does not count a batch with one missing item", () => {
    const j = new Map<string, unknown>();
    const [first] = generateKeys(w("sd", 2).fingerprint, candidates.slice(0, 2));
    j.set(first!.key!, { artifact: { sha256: sha("0") }, defects: [] });
    expect(forecastHits(input(j)).images.hits).toBe(0);
  });
});
