import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXACT, fingerprintMismatch, firstDifference as compare, parseTolerance, type CompareInputs, type Tolerance } from "../../src/manifest/compare.js";
import type { Manifest } from "../../src/manifest/types.js";
import { sha256 } from "../../src/store/cas.js";
import { tempDir } from "../helpers.js";

type Options = { sha?: string; score?: number; text?: string; rm?: number; adapter?: string; acc?: number };
/** Each manifest's run directory, where its image records are. */
const dirs = new Map<Manifest, string>();

// Only the parts replay compares; the rest of a manifest does not take part. The image
// records are written to a run directory of the manifest's own, as a run writes them.
const manifest = (o: Options = {}): Manifest => {
  const dir = tempDir();
  mkdirSync(join(dir, "records"));
  const records = (name: string, record: unknown) => {
    const line = `${JSON.stringify(record)}\n`;
    writeFileSync(join(dir, "records", `${name}.jsonl`), line);
    return { path: `records/${name}.jsonl`, count: 1, bytes: line.length, sha256: sha256(line) };
  };
  const images = records("images", { id: "p", index: 0, candidates: [{ id: "p.gs5.n0", sha256: o.sha ?? "aa", score: o.score ?? 1 }], kept: { id: "p.gs5.n0" } });
  const answers = [
    { id: "p.a.s0", text_sha256: o.text ?? "t1", scores: { rm: o.rm ?? 0.5 } },
    { id: "p.b.s0", text_sha256: "t2", scores: { rm: 0.1 } },
  ];
  const m = manifestOf(o, images, records("responses", { prompt_id: "p", answers, pairs: [] }));
  dirs.set(m, dir);
  return m;
};

const firstDifference = (before: Manifest, after: Manifest, tol: Tolerance = EXACT, inputs: CompareInputs = {}) =>
  compare(before, after, tol, { runDirs: { before: dirs.get(before) ?? null, after: dirs.get(after)! }, ...inputs });

const manifestOf = (o: Options, images: unknown, answers: unknown): Manifest => ({
  stages: {
    images: { status: "succeeded", records: images },
    responses: { status: "succeeded", records: answers },
    train: { status: "succeeded", steps: 4, final_metrics: { loss: 0.69 }, adapter: { sha256: o.adapter ?? "ad" } },
    evaluate: { status: "succeeded", results: [{ benchmark: "pope", split: "run", model: "base", metrics: { accuracy: o.acc ?? 0.5 } }] },
  },
  outputs: { dataset: { sha256: "ds" }, adapter_sha256: o.adapter ?? "ad" },
  workers: { sd: { info: { model: { resolvedRevision: "r1" } }, runtime: { image_digest: "sha256:x" } } },
}) as unknown as Manifest;

describe("replay comparison of records", () => {
  it("byte-equal records match without being read; the original's records missing: their hashes are named", () => {
    const a = manifest();
    const b = manifest({ sha: "bb" });
    dirs.delete(a);
    const d = firstDifference(a, b);
    expect(d).toMatchObject({ stage: "images", item: "records/images.jsonl" });
    expect(d!.what).toMatch(/^sha256 [0-9a-f]{12} vs [0-9a-f]{12} \(the original run's records are not beside its manifest to say which item\)$/);
    expect(firstDifference(a, manifest())).toBeNull();
  });
});

describe("replay comparison", () => {
  it("equal manifests match", () => {
    expect(firstDifference(manifest(), manifest())).toBeNull();
  });

  it("names the first stage and item that differ, and how", () => {
    expect(firstDifference(manifest(), manifest({ sha: "bb" }))).toEqual({ stage: "images", item: "p.gs5.n0", what: "image sha256 aa vs bb" });
    expect(firstDifference(manifest(), manifest({ score: 1.5 }))).toMatchObject({ stage: "images", item: "p.gs5.n0", what: expect.stringMatching(/^score 1 vs 1.5/) });
    const texts = { before: new Map([["p.a.s0", "a cat on a mat"]]), after: new Map([["p.a.s0", "a cat on a rug"]]) };
    expect(firstDifference(manifest(), manifest({ text: "t9", rm: 0.7 }), EXACT, { texts })).toEqual({ stage: "responses", item: "p.a.s0", what: "text differs at word 5: 'mat' vs 'rug'" });
    expect(firstDifference(manifest(), manifest({ adapter: "zz" }))).toEqual({ stage: "train", item: "adapter", what: "sha256 ad vs zz" });
    expect(firstDifference(manifest(), manifest({ acc: 0.6 }))).toEqual({ stage: "evaluate", item: "pope/run/base", what: "accuracy 0.5 vs 0.6" });
  });

  it("a changed text is reported before the score changes it caused", () => {
    expect(firstDifference(manifest(), manifest({ text: "t9", rm: 0.50001 }))?.item).toBe("p.a.s0");
  });

  it("tolerances for GPU runs", () => {
    expect(firstDifference(manifest(), manifest({ score: 1.00001, rm: 0.50002 }), parseTolerance("score=1e-4"))).toBeNull();
    expect(firstDifference(manifest(), manifest({ acc: 0.505 }), parseTolerance("metric=0.01"))).toBeNull();
    expect(() => parseTolerance("pixels=3")).toThrow(/bad tolerance 'pixels=3'/);
  });

  it("a pixel or PSNR tolerance compares the images themselves", () => {
    const near = () => ({ maxDiff: 2, psnr: 48.5 });
    const changed = manifest({ sha: "bb" });
    expect(firstDifference(manifest(), changed, parseTolerance("pixel=2"), { images: near })).toBeNull();
    expect(firstDifference(manifest(), changed, parseTolerance("psnr=40"), { images: near })).toBeNull();
    expect(firstDifference(manifest(), changed, parseTolerance("pixel=1"), { images: near })).toEqual({
      stage: "images",
      item: "p.gs5.n0",
      what: "image sha256 aa vs bb (max pixel difference 2, PSNR 48.5 dB)",
    });
    expect(firstDifference(manifest(), changed, parseTolerance("psnr=50"), { images: near })?.what).toMatch(/PSNR 48\.5 dB/);
    expect(firstDifference(manifest(), changed, parseTolerance("pixel=5"), { images: () => null })?.what).toBe("image sha256 aa vs bb (the images cannot be compared pixel by pixel)");
    // Exact mode never looks at pixels.
    expect(firstDifference(manifest(), changed, EXACT, { images: near })?.what).toBe("image sha256 aa vs bb");
  });

  it("a revision or image digest that cannot be pinned", () => {
    const other = manifest();
    other.workers.sd!.info!.model!.resolvedRevision = "r2";
    expect(fingerprintMismatch(manifest(), other)).toBe("worker 'sd': model revision r1 is pinned but r2 was loaded");
    const digest = manifest();
    digest.workers.sd!.runtime!.image_digest = "sha256:y";
    expect(fingerprintMismatch(manifest(), digest)).toBe("worker 'sd': image digest sha256:x is pinned but sha256:y ran");
    expect(fingerprintMismatch(manifest(), manifest())).toBeNull();
  });
});
