import { describe, expect, it } from "vitest";
import { DEFAULT_PAIR_POLICY } from "../../src/config/schema.js";
import { datasetCard, llavaEntry, pairsJsonLine, questionOf, type AnswerRecord, type PairRecord } from "../../src/store/dataset-format.js";

const answer = (id: string, text: string, score: number): AnswerRecord => ({
  id,
  promptId: "art-001",
  responder: id.split(".")[1]!,
  model: { id: "llava", revision: "tiny-v3" },
  sampleIndex: 0,
  decoding: { max_new_tokens: 8 },
  text,
  numTokens: 3,
  finishReason: "stop",
  scores: { rm: score },
  score,
});
const chosen = answer("art-001.a.s0", "A lighthouse in a storm.", 2);
const rejected = answer("art-001.b.s0", "A cat.", 1);
const rec = (instruction: string): PairRecord => ({
  id: "art-001",
  image: { promptId: "art-001", category: "art", t2iPrompt: "a lighthouse", instruction, candidateId: "art-001.gs7.n0", guidanceScale: 7, score: 0.3, sha256: "ab", path: "images/art-001.png" },
  pair: { chosen, rejected, margin: 1, similarity: 0 },
  candidates: [chosen, rejected],
});

describe("dataset formats", () => {
  it("strips the release format's <image> placeholder from the question", () => {
    expect(questionOf("<image> What is this?")).toBe("What is this?");
    expect(questionOf("What is this?")).toBe("What is this?");
  });

  it("writes TRL's conversational preference format with the image path and provenance", () => {
    const line = JSON.parse(pairsJsonLine(rec("<image> What is this?"), DEFAULT_PAIR_POLICY));
    expect(line).toMatchObject({
      id: "art-001",
      images: ["images/art-001.png"],
      prompt: [{ role: "user", content: "What is this?" }],
      chosen: [{ role: "assistant", content: "A lighthouse in a storm." }],
      rejected: [{ role: "assistant", content: "A cat." }],
    });
    expect(line.metadata).toMatchObject({ category: "art", chosen_id: chosen.id, rejected_id: rejected.id, margin: 1, pair_policy: DEFAULT_PAIR_POLICY });
    expect(line.metadata.candidates).toHaveLength(2);
    expect(line.metadata.candidates[0]).toMatchObject({ responder: "a", model: { id: "llava", revision: "tiny-v3" }, score: 2, decoding: { max_new_tokens: 8 } });
  });

  it("writes the seed's llava format, adding the placeholder when the instruction lacks it", () => {
    expect(llavaEntry(rec("<image> What is this?"))).toEqual({
      id: "art-001",
      image: "images/art-001.png",
      conversations: [{ from: "human", value: "<image> What is this?" }, { from: "gpt", value: "A lighthouse in a storm." }],
      rejected_conversations: [{ from: "human", value: "<image> What is this?" }, { from: "gpt", value: "A cat." }],
    });
    expect(llavaEntry(rec("What is this?")).conversations[0]!.value).toBe("<image>\nWhat is this?");
  });

  it("renders a dataset card, with 'none' for empty tables", () => {
    const card = datasetCard({
      name: "x",
      runId: "r1",
      counts: { pairs: 1 },
      droppedCandidates: {},
      droppedImages: { tie: 2 },
      policy: DEFAULT_PAIR_POLICY,
      models: [{ worker: "a", role: "responder", id: "llava", revision: "tiny-v3", weightsSha256: "cd" }],
      files: [{ path: "dataset/pairs.jsonl", sha256: "ef", bytes: 10 }],
    });
    expect(card).toContain("| pairs | 1 |");
    expect(card).toContain("| none |  |");
    expect(card).toContain("| tie | 2 |");
    expect(card).toContain("| a | responder | llava | tiny-v3 | cd |");
    expect(card).toContain("| dataset/pairs.jsonl | ef | 10 |");
  });
});
