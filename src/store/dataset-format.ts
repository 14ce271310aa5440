// Pure: the preference dataset's on-disk formats. pairs.jsonl is TRL's conversational
// preference format (prompt/chosen/rejected messages plus an `images` column, paths
// relative to the run directory); llava.json is the published PDS-DPO release format.
import type { PairPolicy } from "../config/schema.js";
import type { Pair } from "../plan/pairs.js";

export interface AnswerRecord {
  id: string;
  promptId: string;
  responder: string;
  model: { id: string; revision: string };
  sampleIndex: number;
  decoding: Record<string, unknown>;
  text: string;
  numTokens: number;
  finishReason: string;
  error?: string;
  /** Per response-scorer worker. */
  scores: Record<string, number>;
  /** Weighted sum over the scorers; unset unless every scorer scored it. */
  score?: number;
}

export interface ImageRecord {
  promptId: string;
  category: string;
  t2iPrompt: string;
  instruction: string;
  candidateId: string;
  guidanceScale: number;
  score: number;
  sha256: string;
  path: string;
}

export interface PairRecord {
  id: string;
  image: ImageRecord;
  pair: Pair & { chosen: AnswerRecord; rejected: AnswerRecord };
  candidates: AnswerRecord[];
}

const IMAGE_PLACEHOLDER = /^\s*<image>\s*/;

/** The question without the release format's leading "<image>" placeholder. */
export function questionOf(instruction: string): string {
  return instruction.replace(IMAGE_PLACEHOLDER, "");
}

function candidateMeta(a: AnswerRecord) {
  return {
    id: a.id,
    responder: a.responder,
    model: a.model,
    sample_index: a.sampleIndex,
    decoding: a.decoding,
    text: a.text,
    finish_reason: a.finishReason,
    num_tokens: a.numTokens,
    ...(a.error ? { error: a.error } : {}),
    score: a.score ?? null,
    scores: a.scores,
  };
}

export function pairsJsonLine(rec: PairRecord, policy: PairPolicy): string {
  const question = questionOf(rec.image.instruction);
  return JSON.stringify({
    id: rec.id,
    images: [rec.image.path],
    prompt: [{ role: "user", content: question }],
    chosen: [{ role: "assistant", content: rec.pair.chosen.text }],
    rejected: [{ role: "assistant", content: rec.pair.rejected.text }],
    metadata: {
      category: rec.image.category,
      t2i_prompt: rec.image.t2iPrompt,
      instruction: rec.image.instruction,
      image: { candidate_id: rec.image.candidateId, sha256: rec.image.sha256, score: rec.image.score, guidance_scale: rec.image.guidanceScale },
      chosen_id: rec.pair.chosen.id,
      rejected_id: rec.pair.rejected.id,
      margin: rec.pair.margin,
      similarity: rec.pair.similarity,
      candidates: rec.candidates.map(candidateMeta),
      pair_policy: policy,
    },
  });
}

export function llavaEntry(rec: PairRecord) {
  const human = { from: "human", value: IMAGE_PLACEHOLDER.test(rec.image.instruction) ? rec.image.instruction : `<image>\n${rec.image.instruction}` };
  return {
    id: rec.id,
    image: rec.image.path,
    conversations: [human, { from: "gpt", value: rec.pair.chosen.text }],
    rejected_conversations: [human, { from: "gpt", value: rec.pair.rejected.text }],
  };
}

export interface CardInput {
  name: string;
  runId: string;
  counts: Record<string, number>;
  droppedCandidates: Record<string, number>;
  droppedImages: Record<string, number>;
  policy: PairPolicy;
  models: { worker: string; role: string; id: string; revision: string; weightsSha256: string }[];
  files: { path: string; sha256: string; bytes: number }[];
}

/** A markdown table; a table with no rows says "none". */
const table = (rows: string[][]) => (rows.length > 2 ? rows : [...rows, rows[0]!.map((_, i) => (i === 0 ? "none" : ""))]).map((r) => `| ${r.join(" | ")} |`).join("\n");

export function datasetCard(c: CardInput): string {
  const kv = (o: Record<string, unknown>) => Object.entries(o).map(([k, v]) => [k, String(v)]);
  return `# ${c.name}: PDS-DPO preference pairs

Run \`${c.runId}\`. Images are relative to the run directory.

## Counts

${table([["what", "count"], ["---", "---"], ...kv(c.counts)])}

Candidates dropped (never a chosen or rejected answer):

${table([["reason", "count"], ["---", "---"], ...kv(c.droppedCandidates)])}

Images without a pair:

${table([["reason", "count"], ["---", "---"], ...kv(c.droppedImages)])}

## Pair policy

${table([["setting", "value"], ["---", "---"], ...kv(c.policy as unknown as Record<string, unknown>)])}

## Models

${table([["worker", "role", "model", "revision", "weights sha256"], ["---", "---", "---", "---", "---"], ...c.models.map((m) => [m.worker, m.role, m.id, m.revision, m.weightsSha256])])}

## Files

${table([["file", "sha256", "bytes"], ["---", "---", "---"], ...c.files.map((f) => [f.path, f.sha256, String(f.bytes)])])}
`;
}
