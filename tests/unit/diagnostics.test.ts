import { describe, expect, it } from "vitest";
import {
  classifyPrompt,
  hardNegativeClass,
  histogram,
  imageScoreByGuidance,
  pairSummary,
  promptClassByCategory,
  repetition,
  trainingCurves,
  type PairDiag,
} from "../../src/report/diagnostics.js";

const pair = (chosen: string, rejected: string, cs = 2, rs = 1, cr = "a", rr = "b"): PairDiag => ({
  chosen: { text: chosen, responder: cr, score: cs },
  rejected: { text: rejected, responder: rr, score: rs },
  margin: cs - rs,
});

describe("prompt classes", () => {
  it("classifies by cues, mixed when several match", () => {
    expect(classifyPrompt("<image> How many birds can you see?")).toBe("direct visual");
    expect(classifyPrompt("<image> Describe the mood of this painting.")).toBe("mixed");
    expect(classifyPrompt("What feeling does this evoke?")).toBe("interpretive visual");
    expect(classifyPrompt("What safety advice would you give?")).toBe("commonsense-advice");
    expect(classifyPrompt("Tell me about it.")).toBe("direct visual");
  });

  it("counts classes per category as a heatmap, empty included", () => {
    const h = promptClassByCategory([
      { category: "art", instruction: "How many people are there?" },
      { category: "art", instruction: "Why does it feel sad?" },
      { category: "animal", instruction: "What tips for feeding it?" },
    ]);
    expect(h.rows).toEqual(["animal", "art"]);
    expect(h.cols).toEqual(["direct visual", "interpretive visual", "commonsense-advice", "mixed"]);
    expect(h.values).toEqual([
      [0, 0, 1, 0],
      [1, 1, 0, 0],
    ]);
    expect(promptClassByCategory([])).toEqual({ rows: [], cols: ["direct visual", "interpretive visual", "commonsense-advice", "mixed"], values: [] });
  });
});

describe("histogram", () => {
  it("bins several series on shared edges", () => {
    const h = histogram([{ name: "x", values: [0, 1, 2, 3] }, { name: "y", values: [3, 3] }], 3);
    expect(h.edges).toEqual([0, 1, 2, 3]);
    expect(h.series).toEqual([{ name: "x", counts: [1, 1, 2] }, { name: "y", counts: [0, 0, 2] }]);
  });
  it("handles a single value and no values", () => {
    expect(histogram([{ name: "x", values: [5] }], 2)).toEqual({ edges: [4.5, 5, 5.5], series: [{ name: "x", counts: [0, 1] }] });
    expect(histogram([{ name: "x", values: [] }], 4)).toEqual({ edges: [], series: [{ name: "x", counts: [] }] });
  });
  it("a million values, non-finite ones left out (a large run's report: never spread as arguments)", () => {
    const values = Array.from({ length: 1_000_000 }, (_, i) => i % 10);
    values.push(Number.NaN, Number.POSITIVE_INFINITY);
    const h = histogram([{ name: "x", values }], 10);
    expect(h.edges[0]).toBe(0);
    expect(h.edges.at(-1)).toBe(9);
    expect(h.series[0]!.counts.reduce((a, b) => a + b, 0)).toBe(1_000_000);
  });
});

describe("pair diagnostics", () => {
  it("sorts rejected answers into hard-negative classes by their documented rules", () => {
    const chosen = "A red double-decker bus is crossing an old stone bridge in the rain.";
    expect(hardNegativeClass(chosen, "A red double-decker bus is crossing an old stone bridge in rain.")).toBe("ambiguous duplicate");
    expect(hardNegativeClass(chosen, "A red double-decker bus is crossing a long stone bridge at night.")).toBe("hard near-miss");
    expect(hardNegativeClass(chosen, "Bus.")).toBe("artifact/fragment");
    expect(hardNegativeClass(chosen, "\u0002\u0018�� ��� ���� bus ��")).toBe("artifact/fragment");
    expect(hardNegativeClass(chosen, "the bus the bus the bus the bus the bus the bus the bus the bus")).toBe("length/repetition");
    expect(hardNegativeClass(chosen, "I cannot tell what is in this picture, sorry about that.")).toBe("generic/meta");
    expect(hardNegativeClass(chosen, "Three children are flying a green kite over a sunny beach today.")).toBe("fluent but different");
    expect(repetition("a b c d e f")).toBe(0);
  });

  it("composition, lengths, scores and win rates of hand-made pairs", () => {
    const pairs = [pair("one two three four five six", "seven eight nine ten eleven twelve", 3, 1), pair("alpha beta gamma delta epsilon", "x", 2, 1.5, "b", "a")];
    expect(pairSummary(pairs).hard_negatives).toMatchObject({ "fluent but different": 1, "artifact/fragment": 1, "ambiguous duplicate": 0 });
    const len = pairSummary(pairs, 5).length_words;
    expect(len.series.map((s) => s.counts.reduce((a, b) => a + b, 0))).toEqual([2, 2]);
    const { scores, margins } = pairSummary(pairs, 4);
    expect(scores.series.find((s) => s.name === "chosen")!.counts.reduce((a, b) => a + b, 0)).toBe(2);
    expect(margins.series[0]!.counts.reduce((a, b) => a + b, 0)).toBe(2);
    expect(pairSummary(pairs).responder_win_rates).toEqual([
      { responder: "a", chosen: 1, rejected: 1, winRate: 0.5 },
      { responder: "b", chosen: 1, rejected: 1, winRate: 0.5 },
    ]);
  });

  it("empty and single-pair datasets", () => {
    expect(pairSummary([]).responder_win_rates).toEqual([]);
    expect(Object.values(pairSummary([]).hard_negatives).every((v) => v === 0)).toBe(true);
    expect(pairSummary([]).length_words.edges).toEqual([]);
    const one = [pair("a cat on a mat today", "a dog in a park today")];
    expect(pairSummary(one, 2).margins.series[0]!.counts).toEqual([0, 1]);
    expect(pairSummary(one).responder_win_rates).toEqual([
      { responder: "a", chosen: 1, rejected: 0, winRate: 1 },
      { responder: "b", chosen: 0, rejected: 1, winRate: 0 },
    ]);
  });
});

describe("image and training diagnostics", () => {
  it("mean score and wins per guidance scale", () => {
    expect(
      imageScoreByGuidance([
        [{ guidanceScale: 5, score: 1, kept: false }, { guidanceScale: 7, score: 3, kept: true }],
        [{ guidanceScale: 5, score: 2, kept: true }, { guidanceScale: 7, kept: false }],
      ]),
    ).toEqual([
      { scale: 5, meanScore: 1.5, scored: 2, wins: 1 },
      { scale: 7, meanScore: 3, scored: 1, wins: 1 },
    ]);
    expect(imageScoreByGuidance([])).toEqual([]);
  });

  it("training curves keep the metrics that were logged", () => {
    const curves = trainingCurves([{ step: 1, loss: 0.69 }, { step: 2, loss: 0.6, "rewards/margins": 0.1 }]);
    expect(curves).toEqual([
      { name: "loss", points: [[1, 0.69], [2, 0.6]] },
      { name: "rewards/margins", points: [[2, 0.1]] },
    ]);
    expect(trainingCurves([])).toEqual([]);
  });
});
