// Pure: the kept image per prompt. Defective, failed and unscored candidates are never
// kept; ties go to the earlier candidate (lower image number), so the choice is stable.

export interface CandidateOutcome {
  id: string;
  promptId: string;
  imageNumber: number;
  score?: number;
  defects: string[];
  error?: string;
}

export type Selection =
  | { promptId: string; kept: string; score: number }
  | { promptId: string; kept: null; reason: "no_valid_image" | "below_min_score"; bestScore?: number };

export function selectBest(outcomes: CandidateOutcome[], minScore?: number): Selection[] {
  const byPrompt = new Map<string, CandidateOutcome[]>();
  for (const o of outcomes) {
    const list = byPrompt.get(o.promptId) ?? [];
    list.push(o);
    byPrompt.set(o.promptId, list);
  }
  const out: Selection[] = [];
  for (const [promptId, list] of byPrompt) {
    let best: CandidateOutcome | undefined;
    for (const o of [...list].sort((a, b) => a.imageNumber - b.imageNumber)) {
      if (o.error || o.defects.length > 0 || o.score === undefined || !Number.isFinite(o.score)) continue;
      if (!best || o.score > best.score!) best = o;
    }
    if (!best) out.push({ promptId, kept: null, reason: "no_valid_image" });
    else if (minScore !== undefined && best.score! < minScore) out.push({ promptId, kept: null, reason: "below_min_score", bestScore: best.score! });
    else out.push({ promptId, kept: best.id, score: best.score! });
  }
  return out;
}
