// Pure parts of a data-size sweep: its points, the nested seeded subsets, the size check, the
// manifest's sweep section, and the report's Table 3 and plots.
import { describe, expect, it } from "vitest";
import { ExperimentSchema } from "../../src/config/schema.js";
import { sweepSection } from "../../src/manifest/sweep.js";
import type { ManifestStages } from "../../src/manifest/types.js";
import { meanSpread, seededOrder, sizeProblem, subsetOf, sweepPoints } from "../../src/plan/sweep.js";
import { sweepHtml, sweepLossCurves, sweepMarkdown, sweepTable } from "../../src/report/sweep.js";

const ids = Array.from({ length: 50 }, (_, i) => `p${i}`);

describe("sweep points and subsets", () => {
  it("points: sizes ascending, each size's seeds in order; the experiment seed when none are given", () => {
    expect(sweepPoints({ "train.data_size": [5, 2], seeds: [3, 1] }, 0).map((p) => p.name)).toEqual(["n2-s3", "n2-s1", "n5-s3", "n5-s1"]);
    expect(sweepPoints({ "train.data_size": [4] }, 9)).toEqual([{ name: "n4-s9", size: 4, seed: 9 }]);
  });

  it("subsets are nested within a seed, differ between seeds, and do not depend on the file's order", () => {
    const of = (size: number, seed: number, list = ids) => subsetOf(list, (x) => x, { size, seed });
    for (const seed of [1, 2]) {
      expect(of(20, seed).slice(0, 10)).toEqual(of(10, seed));
      expect(new Set(of(10, seed)).size).toBe(10);
    }
    expect(of(10, 1)).not.toEqual(of(10, 2));
    expect(of(10, 1, [...ids].reverse())).toEqual(of(10, 1));
    // Not just the first N of the file.
    expect(of(10, 1)).not.toEqual(ids.slice(0, 10));
    expect(seededOrder(ids, 1).sort((a, b) => a - b)).toEqual(ids.map((_, i) => i));
  });

  it("a size above the items is refused, naming every size too large", () => {
    expect(() => subsetOf(ids, (x) => x, { size: 51, seed: 1 })).toThrow("size 51 exceeds the 50 pairs available");
    expect(sizeProblem({ "train.data_size": [10, 60, 70] }, 50)).toBe("sizes 60, 70 exceed the 50 pairs available");
    expect(sizeProblem({ "train.data_size": [10, 50] }, 50)).toBeNull();
  });

  it("mean and sample standard deviation over seeds", () => {
    expect(meanSpread([0.5])).toEqual({ mean: 0.5, spread: 0, n: 1 });
    const m = meanSpread([1, 2, 3]);
    expect(m.mean).toBe(2);
    expect(m.spread).toBeCloseTo(1, 12);
  });

  it("the schema: strict, sizes and seeds listed once, positive sizes, only with a train stage", () => {
    const base = { name: "x", workers: {}, stages: { train: { trainer: "t", dataset: "d.jsonl", lora: { r: 1, alpha: 1 }, dpo: { beta: 0.1 }, optim: { lr: 1 } } } };
    const problems = (sweep: unknown, stages: unknown = base.stages) => {
      const r = ExperimentSchema.safeParse({ ...base, stages, sweep });
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    };
    expect(problems({ "train.data_size": [2, 5], seeds: [1, 2] })).toEqual([]);
    expect(problems({ "train.data_size": [2, 2] })).toEqual(["sweep.train.data_size: 2 is listed twice"]);
    expect(problems({ "train.data_size": [2], seeds: [1, 1] })).toEqual(["sweep.seeds: 1 is listed twice"]);
    expect(problems({ "train.data_size": [0] })[0]).toMatch(/^sweep\.train\.data_size\.0: /);
    expect(problems({ "train.data_size": [] })[0]).toMatch(/^sweep\.train\.data_size: /);
    expect(problems({ "train.data_size": [2], size: 3 })[0]).toMatch(/^sweep: .*size/);
    expect(problems({ "train.data_size": [2] }, { images: undefined, train: undefined })).toContain("sweep: sweeps the train stage's data size: add stages.train");
  });
});

const pope = (accuracy: number, f1: number) => [{ benchmark: "pope", split: "run", metrics: { questions: 8, accuracy, f1 } }];

/** A manifest's stages of a sweep over sizes 2 and 4, seeds 1 and 2. */
function stages(): ManifestStages {
  const point = (size: number, seed: number) => ({ name: `n${size}-s${seed}`, size, seed, subset: { path: `train/n${size}-s${seed}/pairs.jsonl`, sha256: `sub${size}${seed}`, pairs: size }, adapter: { path: "a", sha256: `ad${size}${seed}`, bytes: 1 }, steps: 2, final_metrics: { loss: 0.6 }, checkpoints: [] });
  const results = [
    { model: "base", ...pope(0.5, 0.4)[0]! },
    { model: "n2-s1", ...pope(0.6, 0.5)[0]! },
    { model: "n2-s2", ...pope(0.8, 0.7)[0]! },
    { model: "n4-s1", ...pope(0.9, 0.9)[0]! },
    { model: "n4-s2", ...pope(0.9, 0.9)[0]! },
  ];
  return { train: { status: "succeeded", checkpoints: [], points: [point(2, 1), point(2, 2), point(4, 1), point(4, 2)] }, evaluate: { status: "succeeded", results } } as unknown as ManifestStages;
}

describe("the manifest's sweep section and the report's Table 3", () => {
  it("each point's hashes and metrics, the base's metrics; none without points", () => {
    const s = sweepSection(stages())!;
    expect(s.base).toEqual(pope(0.5, 0.4));
    expect(s.points[1]).toEqual({ name: "n2-s2", size: 2, seed: 2, subset_sha256: "sub22", adapter_sha256: "ad22", loss: 0.6, metrics: pope(0.8, 0.7) });
    expect(sweepSection({ train: { status: "succeeded", checkpoints: [] } } as unknown as ManifestStages)).toBeUndefined();
  });

  it("rows: the base first, then each size; a column per metric (counts left out), mean ± spread over seeds", () => {
    const t = sweepTable(sweepSection(stages())!);
    expect(t.columns.map((c) => c.metric)).toEqual(["accuracy", "f1"]);
    expect(t.rows.map((r) => [r.label, r.seeds])).toEqual([["base", []], ["2", [1, 2]], ["4", [1, 2]]]);
    expect(t.rows[1]!.cells[0]!.mean).toBeCloseTo(0.7, 12);
    expect(t.rows[1]!.cells[0]!.spread).toBeCloseTo(Math.SQRT2 * 0.1, 12);
    const md = sweepMarkdown(t).split("\n");
    expect(md[0]).toBe("| size | seeds | pope/run accuracy | pope/run f1 |");
    expect(md[2]).toBe("| base | - | 0.5000 | 0.4000 |");
    expect(md[3]).toBe("| 2 | 1, 2 | 0.7000 ± 0.1414 | 0.6000 ± 0.1414 |");
    expect(md[4]).toBe("| 4 | 1, 2 | 0.9000 ± 0.0000 | 0.9000 ± 0.0000 |");
  });

  it("training curves: each point's loss by step", () => {
    const curves = sweepLossCurves([{ name: "n2-s1", steps: [{ step: 1, loss: 0.7 }, { step: 2, loss: 0.6 }] }, { name: "n4-s1", steps: [{ step: 1, loss: 0.69 }] }]);
    expect(curves).toEqual([{ name: "n2-s1 loss", points: [[1, 0.7], [2, 0.6]] }, { name: "n4-s1 loss", points: [[1, 0.69]] }]);
  });

  it("one plot per metric: a point per size, a band, error bars and the base as a reference line", () => {
    const html = sweepHtml(sweepTable(sweepSection(stages())!));
    const charts = [...html.matchAll(/<svg data-chart="([^"]+)" data-points="(\d+)"/g)].map((m) => [m[1], m[2]]);
    expect(charts).toEqual([["sweep-pope-run-accuracy", "2"], ["sweep-pope-run-f1", "2"]]);
    expect(html.match(/class="band"/g)).toHaveLength(2);
    expect(html.match(/class="error-bar"/g)).toHaveLength(4);
    expect(html.match(/class="reference"/g)).toHaveLength(2);
    expect(html).toContain("<table class=\"sweep\">");
  });
});
