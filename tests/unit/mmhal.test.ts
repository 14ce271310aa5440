// MMHal-Bench's rubric: the judge prompt and the rating parse as its GPT-4 scoring script
// (eval_gpt4.py) makes and reads them, against hand-written judge replies.
import { describe, expect, it } from "vitest";
import { judgePrompt, mmhalMetrics, parseRating, responsesFile, type MmhalRow } from "../../src/eval/mmhal.js";

const row = (question_type: string, i = 0): MmhalRow => ({
  question_type,
  question_topic: "outdoor",
  image_id: `img${i}`,
  image_src: `https://example.invalid/${i}.jpg`,
  image_content: ["Dog", "Tree"],
  question: "What colour is the dog?",
  gt_answer: "The dog is brown.",
  model_answer: "",
});

describe("MMHal-Bench judging", () => {
  it("the judge prompt is the rubric with the image contents, question, standard answer and response filled in, in that order", () => {
    const p = judgePrompt(row("attribute"), "The dog is black.");
    expect(p.startsWith("Please act as an impartial and objective judge")).toBe(true);
    expect(p).toContain("- Rating: 6, very informative with good analysis or reasoning, no hallucination\n- Rating: 5, very informative, no hallucination");
    expect(p.endsWith("### Image Contents\nDog, Tree\n\n### Question\nWhat colour is the dog?\n\n### Standard Human-Generated Answer\nThe dog is brown.\n\n### LMM Response to Evaluate\nThe dog is black.\n")).toBe(true);
  });

  it("a rating is the one 'rating: N' in the reply, in any case; none or two different ones are unparseable", () => {
    expect(parseRating("The response claims a black dog, but the dog is brown.\nRating: 2, very informative, with hallucination")).toBe(2);
    expect(parseRating("Explanation: accurate and detailed. RATING: 6")).toBe(6);
    expect(parseRating("rating: 0")).toBe(0);
    expect(parseRating("I would give it a 5.")).toBeNull();
    expect(parseRating("Rating: 4 ... on reflection, Rating: 3")).toBeNull();
    expect(parseRating("Rating:5")).toBeNull();
    // The same number twice is one rating, as the script's `in` test finds it.
    expect(parseRating("Rating: 5. Final answer: Rating: 5")).toBe(5);
  });

  it("score is the mean rating, hallucination rate the share below 3, a score per question type; unparseable counts as 0", () => {
    const rows = [row("attribute"), row("attribute"), row("counting"), row("counting")];
    const m = mmhalMetrics(rows, [6, 2, 3, null]);
    expect(m.questions).toBe(4);
    expect(m.score).toBeCloseTo((6 + 2 + 3 + 0) / 4, 12);
    expect(m.hallucination_rate).toBeCloseTo(2 / 4, 12);
    expect(m.unparseable).toBe(1);
    expect(m.score_attribute).toBeCloseTo(4, 12);
    expect(m.score_counting).toBeCloseTo(1.5, 12);
    expect(() => mmhalMetrics(rows, [1])).toThrow(RangeError);
  });

  it("the export is the template with model_answer filled in, as MMHal's scoring script reads it", () => {
    const rows = [row("attribute", 0), row("counting", 1)];
    const out = JSON.parse(responsesFile(rows, ["black dog", "two"])) as MmhalRow[];
    expect(out).toEqual([{ ...rows[0], model_answer: "black dog" }, { ...rows[1], model_answer: "two" }]);
  });
});
