// Pure: the dataset diagnostics of a run, over its records (manifest, pairs, metrics).
// Every rule is here, in the open, so a chart can always be traced to how it was counted.
import { textSimilarity, words } from "../plan/pairs.js";

// ---------- prompt class by category ----------

export const PROMPT_CLASSES = ["direct visual", "interpretive visual", "commonsense-advice", "mixed"] as const;
export type PromptClass = (typeof PROMPT_CLASSES)[number];

const CLASS_CUES: [Exclude<PromptClass, "mixed">, RegExp][] = [
  ["direct visual", /\b(what (is|are|color|colors|kind|type)|how many|describe|list|name|is there|are there|which|where|identify|count|see)\b/i],
  ["interpretive visual", /\b(mood|feel|feeling|atmosphere|why|meaning|story|suggest|emotion|style|technique|symbol|imagine|interpret|might)\b/i],
  ["commonsense-advice", /\b(should|how (would|can|do|to)|advice|tips?|safety|risks?|recommend|use it|suited|what can|what would)\b/i],
];

/** direct visual / interpretive visual / commonsense-advice by keyword cues; two or more: mixed; none: direct visual. */
export function classifyPrompt(instruction: string): PromptClass {
  const hits = CLASS_CUES.filter(([, re]) => re.test(instruction)).map(([c]) => c);
  if (hits.length >= 2) return "mixed";
  return hits[0] ?? "direct visual";
}

export interface Heatmap {
  rows: string[];
  cols: string[];
  values: number[][];
}

/** One pass over the prompts (they may be read from records a line at a time). */
export function promptClassByCategory(prompts: Iterable<{ category: string; instruction: string }>): Heatmap {
  const cols = [...PROMPT_CLASSES];
  const byCategory = new Map<string, number[]>();
  for (const p of prompts) {
    let row = byCategory.get(p.category);
    if (!row) byCategory.set(p.category, (row = cols.map(() => 0)));
    row[cols.indexOf(classifyPrompt(p.instruction))]!++;
  }
  const rows = [...byCategory.keys()].sort();
  return { rows, cols, values: rows.map((r) => byCategory.get(r)!) };
}

// ---------- histograms ----------

export interface Histogram {
  /** Bin edges: bin i is [edges[i], edges[i+1]). */
  edges: number[];
  series: { name: string; counts: number[] }[];
}

/** Equal-width bins over all series together, so their counts compare bin by bin. */
export function histogram(series: { name: string; values: number[] }[], bins = 10): Histogram {
  // A loop, not Math.min(...values): a run's hundreds of thousands of values overflow the stack as arguments.
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (const v of s.values) {
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo > hi) return { edges: [], series: series.map((s) => ({ name: s.name, counts: [] })) };
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + i * width);
  return {
    edges,
    series: series.map((s) => {
      const counts = new Array<number>(bins).fill(0);
      for (const v of s.values) if (Number.isFinite(v)) counts[Math.min(bins - 1, Math.floor((v - lo) / width))]!++;
      return { name: s.name, counts };
    }),
  };
}

// ---------- pairs ----------

export interface PairDiag {
  chosen: { text: string; responder: string; score: number };
  rejected: { text: string; responder: string; score: number };
  margin: number;
}

export const HARD_NEGATIVE_CLASSES = [
  "ambiguous duplicate",
  "hard near-miss",
  "fluent but different",
  "generic/meta",
  "length/repetition",
  "artifact/fragment",
] as const;
export type HardNegativeClass = (typeof HARD_NEGATIVE_CLASSES)[number];

const GENERIC = /\b(as an ai|i cannot|i can't|i am unable|i'm unable|the image (shows|depicts) (a|an|the) (picture|image|scene)|it is not possible to|sorry)\b/i;

/** Share of repeated word trigrams: 0 for none, toward 1 for a loop. */
export function repetition(text: string): number {
  const w = words(text);
  if (w.length < 6) return 0;
  const grams = w.slice(0, -2).map((_, i) => `${w[i]} ${w[i + 1]} ${w[i + 2]}`);
  return 1 - new Set(grams).size / grams.length;
}

/**
 * The hard-negative class of a rejected answer, first rule that holds:
 * ambiguous duplicate (similarity to chosen >= 0.9), hard near-miss (>= 0.6),
 * artifact/fragment (under 5 words, or over 20% of characters outside letters, digits,
 * spaces and punctuation), length/repetition (word-count ratio > 3 either way, or over 30%
 * repeated trigrams), generic/meta (refusal or boilerplate phrases), else fluent but different.
 */
export function hardNegativeClass(chosen: string, rejected: string): HardNegativeClass {
  const sim = textSimilarity(chosen, rejected);
  if (sim >= 0.9) return "ambiguous duplicate";
  if (sim >= 0.6) return "hard near-miss";
  const n = words(rejected).length;
  const odd = rejected.length ? [...rejected].filter((ch) => !/[\p{L}\p{N}\s.,;:!?'"()-]/u.test(ch)).length / rejected.length : 1;
  if (n < 5 || odd > 0.2) return "artifact/fragment";
  const m = words(chosen).length;
  if (Math.max(n, m) / Math.max(1, Math.min(n, m)) > 3 || repetition(rejected) > 0.3) return "length/repetition";
  if (GENERIC.test(rejected)) return "generic/meta";
  return "fluent but different";
}

/**
 * Every pair diagnostic in one pass over the pairs (a run's pairs are read a line at a time
 * from dataset/pairs.jsonl): the count, word lengths, scores, margins, each responder's wins
 * and the hard-negative classes. Only numbers per pair are kept, never the texts.
 */
export function pairSummary(pairs: Iterable<PairDiag>, bins = 10) {
  const hard = Object.fromEntries(HARD_NEGATIVE_CLASSES.map((c) => [c, 0])) as Record<HardNegativeClass, number>;
  const tally = new Map<string, { chosen: number; rejected: number }>();
  const get = (r: string) => tally.get(r) ?? tally.set(r, { chosen: 0, rejected: 0 }).get(r)!;
  const col = { chosenWords: [] as number[], rejectedWords: [] as number[], chosenScores: [] as number[], rejectedScores: [] as number[], margins: [] as number[] };
  let count = 0;
  for (const p of pairs) {
    count++;
    col.chosenWords.push(words(p.chosen.text).length);
    col.rejectedWords.push(words(p.rejected.text).length);
    col.chosenScores.push(p.chosen.score);
    col.rejectedScores.push(p.rejected.score);
    col.margins.push(p.margin);
    get(p.chosen.responder).chosen++;
    get(p.rejected.responder).rejected++;
    hard[hardNegativeClass(p.chosen.text, p.rejected.text)]++;
  }
  return {
    pairs: count,
    length_words: histogram(
      [
        { name: "chosen", values: col.chosenWords },
        { name: "rejected", values: col.rejectedWords },
      ],
      bins,
    ),
    scores: histogram(
      [
        { name: "chosen", values: col.chosenScores },
        { name: "rejected", values: col.rejectedScores },
      ],
      bins,
    ),
    margins: histogram([{ name: "margin", values: col.margins }], bins),
    responder_win_rates: [...tally]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([responder, t]) => ({ responder, ...t, winRate: t.chosen / (t.chosen + t.rejected) })),
    hard_negatives: hard,
  };
}


// ---------- images ----------

export interface ImageDiagCandidate {
  guidanceScale: number;
  score?: number;
  kept: boolean;
}

export function imageScoreByGuidance(prompts: Iterable<ImageDiagCandidate[]>): { scale: number; meanScore: number; scored: number; wins: number }[] {
  const by = new Map<number, { sum: number; n: number; wins: number }>();
  for (const candidates of prompts) {
    for (const c of candidates) {
      const s = by.get(c.guidanceScale) ?? { sum: 0, n: 0, wins: 0 };
      if (c.score !== undefined && Number.isFinite(c.score)) {
        s.sum += c.score;
        s.n++;
      }
      if (c.kept) s.wins++;
      by.set(c.guidanceScale, s);
    }
  }
  return [...by]
    .sort(([a], [b]) => a - b)
    .map(([scale, s]) => ({ scale, meanScore: s.n ? s.sum / s.n : Number.NaN, scored: s.n, wins: s.wins }));
}

// ---------- training ----------

export function trainingCurves(steps: Record<string, number>[], keys = ["loss", "rewards/margins", "rewards/accuracies"]): { name: string; points: [number, number][] }[] {
  return keys
    .map((k) => ({ name: k, points: steps.filter((s) => Number.isFinite(s[k]) && Number.isFinite(s.step)).map((s) => [s.step!, s[k]!] as [number, number]) }))
    .filter((c) => c.points.length > 0);
}
