// Pure: chosen/rejected pairs from scored candidate answers of one image.
// best-vs-worst is the paper's policy; the filters fix its known weaknesses (an empty or
// failed answer became "rejected"; ties and near-identical pairs carry no preference).
import { DEFAULT_PAIR_POLICY, type PairPolicy } from "../config/schema.js";

export interface AnswerCandidate {
  id: string;
  responder: string;
  sampleIndex: number;
  text: string;
  /** "stop", "length" (hit max_new_tokens) or "error". */
  finishReason: string;
  score?: number;
  error?: string;
}

export type CandidateDropReason = "failed" | "empty" | "truncated" | "unscored";
export type PairDropReason = "too_few_candidates" | "tie" | "below_margin" | "near_duplicate" | "length_ratio";

export interface Pair {
  chosen: AnswerCandidate;
  rejected: AnswerCandidate;
  margin: number;
  similarity: number;
}

export interface PairOutcome {
  pairs: Pair[];
  droppedCandidates: { id: string; reason: CandidateDropReason }[];
  /** Why the image got fewer pairs than asked (the first reason met), if it did. */
  droppedPair?: PairDropReason;
}

export function normalizeText(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}\p{N}\s]/gu, " ").replace(/\s+/g, " ").trim();
}

export function words(text: string): string[] {
  const n = normalizeText(text);
  return n ? n.split(" ") : [];
}

/** Word-level edit similarity of normalized texts: 1 - levenshtein / longer length. */
export function textSimilarity(a: string, b: string): number {
  const x = words(a);
  const y = words(b);
  if (x.length === 0 && y.length === 0) return 1;
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return 1 - prev[y.length]! / Math.max(x.length, y.length);
}

function candidateProblem(c: AnswerCandidate, policy: PairPolicy): CandidateDropReason | undefined {
  if (c.error || c.finishReason === "error") return "failed";
  if (words(c.text).length === 0 && !policy.keep_empty) return "empty";
  if (policy.drop_truncated && c.finishReason === "length") return "truncated";
  if (c.score === undefined || !Number.isFinite(c.score)) return "unscored";
  return undefined;
}

function pairProblem(chosen: AnswerCandidate, rejected: AnswerCandidate, policy: PairPolicy): { reason?: PairDropReason; margin: number; similarity: number } {
  const margin = chosen.score! - rejected.score!;
  const similarity = textSimilarity(chosen.text, rejected.text);
  if (policy.drop_ties && margin <= 0) return { reason: "tie", margin, similarity };
  if (margin < policy.min_margin) return { reason: "below_margin", margin, similarity };
  if (similarity >= policy.max_similarity && policy.max_similarity < 1) return { reason: "near_duplicate", margin, similarity };
  if (policy.max_length_ratio !== undefined) {
    const [a, b] = [words(chosen.text).length, words(rejected.text).length];
    if (Math.max(a, b) / Math.min(a, b) > policy.max_length_ratio) return { reason: "length_ratio", margin, similarity };
  }
  return { margin, similarity };
}

export function pickPairs(candidates: AnswerCandidate[], policy: PairPolicy = DEFAULT_PAIR_POLICY): PairOutcome {
  const droppedCandidates: PairOutcome["droppedCandidates"] = [];
  const valid: AnswerCandidate[] = [];
  for (const c of candidates) {
    const reason = candidateProblem(c, policy);
    if (reason) droppedCandidates.push({ id: c.id, reason });
    else valid.push(c);
  }
  // Highest score first; equal scores in id order, so the result never depends on arrival order.
  valid.sort((a, b) => b.score! - a.score! || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (valid.length < 2) return { pairs: [], droppedCandidates, droppedPair: "too_few_candidates" };
  // best-vs-worst first, then the next widest margins (ties: better chosen, then worse rejected).
  const options: { i: number; j: number; margin: number }[] = [];
  for (let i = 0; i < valid.length; i++) {
    for (let j = i + 1; j < valid.length; j++) options.push({ i, j, margin: valid[i]!.score! - valid[j]!.score! });
  }
  options.sort((a, b) => b.margin - a.margin || a.i - b.i || b.j - a.j);
  const pairs: Pair[] = [];
  let droppedPair: PairDropReason | undefined;
  for (const { i, j } of options) {
    if (pairs.length >= policy.pairs_per_image) break;
    const chosen = valid[i]!;
    const rejected = valid[j]!;
    const { reason, margin, similarity } = pairProblem(chosen, rejected, policy);
    if (reason) {
      droppedPair ??= reason;
      // Under the paper's single best-vs-worst pair, the widest pair decides.
      if (policy.pairs_per_image === 1) break;
      continue;
    }
    pairs.push({ chosen, rejected, margin, similarity });
  }
  return { pairs, droppedCandidates, droppedPair: pairs.length < policy.pairs_per_image ? droppedPair : undefined };
}
