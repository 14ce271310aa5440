import { describe, expect, it } from "vitest";
import { detailTable, paperTable, summaryMarkdown, type EvalEntry } from "../../src/eval/summary.js";
import { popeFromImages } from "../../src/plan/pope-from-run.js";

describe("smoke-pope from a run's images", () => {
  it("asks one yes question about the image's own category and one no question about another", () => {
    const rows = popeFromImages([
      { id: "art-001.gs7.n1", category: "art", path: "eval/smoke-pope-images/art-001.gs7.n1.png" },
      { id: "weather-002.gs5.n0", category: "weather", path: "eval/smoke-pope-images/weather-002.gs5.n0.png" },
    ]);
    expect(rows).toEqual([
      { question_id: "art-001.gs7.n1.yes", image: "eval/smoke-pope-images/art-001.gs7.n1.png", text: "Is there a painting in the image?", label: "yes" },
      { question_id: "art-001.gs7.n1.no", image: "eval/smoke-pope-images/art-001.gs7.n1.png", text: "Is there a plate in the image?", label: "no" },
      { question_id: "weather-002.gs5.n0.yes", image: "eval/smoke-pope-images/weather-002.gs5.n0.png", text: "Is there a cloud in the image?", label: "yes" },
      { question_id: "weather-002.gs5.n0.no", image: "eval/smoke-pope-images/weather-002.gs5.n0.png", text: "Is there an animal in the image?", label: "no" },
    ]);
    expect(popeFromImages([])).toEqual([]);
  });
});

const R = (benchmark: string, benchmark_type: EvalEntry["benchmark_type"], split: string, model: string, metrics: Record<string, number>): EvalEntry => ({ benchmark, benchmark_type, split, model, metrics });

describe("eval summary", () => {
  const results = [
    R("pope", "pope", "random", "base", { accuracy: 0.8, precision: 0.9 }),
    R("pope", "pope", "random", "trained", { accuracy: 0.9, precision: 0.95 }),
    R("pope", "pope", "popular", "base", { accuracy: 0.6, precision: 0.7 }),
    R("pope", "pope", "popular", "trained", { accuracy: 0.7, precision: 0.75 }),
    R("objhal", "object-halbench", "all", "base", { chair_s: 0.5, chair_i: 0.25 }),
    R("objhal", "object-halbench", "all", "trained", { chair_s: 0.4, chair_i: 0.2 }),
    R("mmhal", "mmhal", "all", "base", { score: 2.5, hallucination_rate: 0.5 }),
    R("smoke", "smoke-pope", "run", "base", { accuracy: 0.5 }),
  ];

  it("the paper's layout: a row per variant, POPE averaged over its splits, empty where a benchmark did not run", () => {
    const t = paperTable(results);
    expect(t.head).toEqual(["variant", "MMHal score", "MMHal hall.", "AMBER CHAIR", "AMBER Cover", "POPE acc", "POPE prec", "CHAIR_s", "CHAIR_i"]);
    expect(t.rows).toEqual([
      ["base", "2.5000", "0.5000", "", "", "0.7000", "0.8000", "0.5000", "0.2500"],
      ["trained", "", "", "", "", "0.8000", "0.8500", "0.4000", "0.2000"],
    ]);
  });

  it("detail: every metric of every split, variants side by side with the delta from the base", () => {
    const t = detailTable(results, "pope");
    expect(t.head).toEqual(["split", "metric", "base", "trained", "delta trained"]);
    expect(t.rows).toContainEqual(["random", "accuracy", "0.8000", "0.9000", "+0.1000"]);
    expect(t.rows).toContainEqual(["popular", "precision", "0.7000", "0.7500", "+0.0500"]);
    expect(detailTable(results, "mmhal").rows).toContainEqual(["all", "score", "2.5000", "", ""]);
  });

  it("takes any number of named variants (sweep points)", () => {
    const t = detailTable([R("p", "pope", "random", "base", { accuracy: 0.5 }), R("p", "pope", "random", "2k", { accuracy: 0.625 }), R("p", "pope", "random", "5k", { accuracy: 0.375 })], "p");
    expect(t.head).toEqual(["split", "metric", "base", "2k", "5k", "delta 2k", "delta 5k"]);
    expect(t.rows).toEqual([["random", "accuracy", "0.5000", "0.6250", "0.3750", "+0.1250", "-0.1250"]]);
  });

  it("summary.md: the paper's table, the overlap check, a section per benchmark; a smoke-pope is labelled a smoke check", () => {
    const md = summaryMarkdown(results, { benchmark_images: 7, training_images: 3, dhash_max_distance: 6, overlaps: [], allowed: false });
    expect(md).toContain("| variant | MMHal score | MMHal hall. | AMBER CHAIR | AMBER Cover | POPE acc | POPE prec | CHAIR_s | CHAIR_i |");
    expect(md).toContain("| trained |   |   |   |   | 0.8000 | 0.8500 | 0.4000 | 0.2000 |");
    expect(md).toContain("none of 7 benchmark images matches any of 3 training images");
    expect(md).toContain("## smoke (smoke-pope)\n\nSmoke check:");
    expect(md).not.toMatch(/## pope \(pope\)\n\nSmoke/);
    const flagged = summaryMarkdown(results, { benchmark_images: 7, training_images: 3, dhash_max_distance: 6, allowed: true, overlaps: [{ benchmark: "pope", image: "a.png", training_image: "images/x.png", match: "dhash", distance: 2 }] });
    expect(flagged).toContain("**Overlap: 1 benchmark image matches training images; evaluated anyway (allow_overlap: true)");
    expect(flagged).toContain("- pope: a.png = training image images/x.png (dhash, 2 bits)");
    const judged = summaryMarkdown([R("mmhal", "mmhal", "all", "base", { score: 1, questions: 3, judge_errors: 2 })]);
    expect(judged).toContain("**mmhal (base): the judge could not rate 2 of 3 answers (rated 0; see eval/mmhal-base.judge.jsonl).**");
  });
});
