import { describe, expect, it } from "vitest";
import { DEFAULT_PAIR_POLICY, type PairPolicy } from "../../src/config/schema.js";
import { normalizeText, pickPairs, textSimilarity, type AnswerCandidate } from "../../src/plan/pairs.js";

let n = 0;
const c = (score: number | undefined, text = `answer number ${++n} about a cat on a table`, extra: Partial<AnswerCandidate> = {}): AnswerCandidate => ({
  id: `c${++n}`,
  responder: "r",
  sampleIndex: 0,
  text,
  finishReason: "stop",
  score,
  ...extra,
});
const policy = (p: Partial<PairPolicy> = {}): PairPolicy => ({ ...DEFAULT_PAIR_POLICY, ...p });

describe("text similarity", () => {
  it("normalizes case, punctuation and spaces", () => {
    expect(normalizeText("  A cat,  ON the MAT! ")).toBe("a cat on the mat");
    expect(textSimilarity("A cat on the mat.", "a cat on the mat")).toBe(1);
  });
  it("is the word-level edit similarity", () => {
    expect(textSimilarity("a b c d", "a b x d")).toBe(0.75);
    expect(textSimilarity("a b", "c d e f")).toBe(0);
    expect(textSimilarity("", "")).toBe(1);
  });
});

describe("best-vs-worst", () => {
  it("pairs the highest and the lowest score (the paper's policy)", () => {
    const [a, b, d] = [c(3, "the cat sits on a red mat"), c(1, "a dog runs in the park"), c(2, "there is a bird in a tree")];
    const out = pickPairs([a, b, d]);
    expect(out.pairs).toHaveLength(1);
    expect(out.pairs[0]).toMatchObject({ chosen: a, rejected: b, margin: 2 });
    expect(out.droppedCandidates).toEqual([]);
    expect(out.droppedPair).toBeUndefined();
  });

  it("never makes an empty, failed, truncated or unscored answer a candidate", () => {
    const good = [c(1, "a short fine answer"), c(5, "another different reply here")];
    const out = pickPairs([
      c(-9, "   "),
      c(-8, "x", { finishReason: "error", error: "boom" }),
      c(-7, "cut off mid", { finishReason: "length" }),
      c(undefined, "never scored"),
      ...good,
    ]);
    expect(out.droppedCandidates.map((d) => d.reason)).toEqual(["empty", "failed", "truncated", "unscored"]);
    expect(out.pairs[0]).toMatchObject({ chosen: good[1], rejected: good[0] });
  });

  it("keeps truncated answers when asked to", () => {
    const out = pickPairs([c(2, "complete answer text"), c(1, "cut off answer words here", { finishReason: "length" })], policy({ drop_truncated: false }));
    expect(out.pairs).toHaveLength(1);
  });

  it("drops ties", () => {
    expect(pickPairs([c(1, "one thing entirely"), c(1, "another reply altogether")])).toMatchObject({ pairs: [], droppedPair: "tie" });
  });

  it("drops a pair under the minimum margin", () => {
    const out = pickPairs([c(1.2, "alpha beta gamma"), c(1, "delta epsilon zeta")], policy({ min_margin: 0.5 }));
    expect(out).toMatchObject({ pairs: [], droppedPair: "below_margin" });
  });

  it("drops near-duplicate chosen and rejected", () => {
    const out = pickPairs([c(2, "A cat sits on the mat."), c(1, "a cat sits on the mat")]);
    expect(out).toMatchObject({ pairs: [], droppedPair: "near_duplicate" });
    expect(pickPairs([c(2, "A cat sits on the mat."), c(1, "a cat sits on the mat")], policy({ max_similarity: 1 })).pairs).toHaveLength(1);
  });

  it("caps the length ratio when asked", () => {
    const long = "word ".repeat(40);
    const out = pickPairs([c(2, long), c(1, "short reply here")], policy({ max_length_ratio: 4 }));
    expect(out).toMatchObject({ pairs: [], droppedPair: "length_ratio" });
  });

  it("all answers empty: no pair, every candidate dropped with its reason", () => {
    const out = pickPairs([c(1, ""), c(2, " ")]);
    expect(out.pairs).toEqual([]);
    expect(out.droppedCandidates.map((d) => d.reason)).toEqual(["empty", "empty"]);
    expect(out.droppedPair).toBe("too_few_candidates");
  });

  it("a single candidate makes no pair", () => {
    expect(pickPairs([c(1, "alone")])).toMatchObject({ pairs: [], droppedPair: "too_few_candidates" });
    expect(pickPairs([])).toMatchObject({ pairs: [], droppedPair: "too_few_candidates" });
  });

  it("several pairs per image above the margin, widest first", () => {
    const [a, b, d, e] = [c(4, "first distinct answer"), c(3, "second other reply"), c(2, "third separate text"), c(0, "fourth unrelated words")];
    const out = pickPairs([d, b, e, a], policy({ pairs_per_image: 3, min_margin: 1.5 }));
    expect(out.pairs.map((p) => [p.chosen.id, p.rejected.id, p.margin])).toEqual([
      [a.id, e.id, 4],
      [b.id, e.id, 3],
      [a.id, d.id, 2],
    ]);
    expect(out.droppedPair).toBeUndefined();
  });

  it("does not depend on the order candidates arrive in", () => {
    const xs = [c(2, "same score one text"), c(2, "same score two words"), c(0, "the lowest of all")];
    const forward = pickPairs(xs);
    const backward = pickPairs([...xs].reverse());
    expect(backward.pairs[0]!.chosen.id).toBe(forward.pairs[0]!.chosen.id);
  });
});
