// Pure: every diagnostic of a run from its records, as one JSON-ready object.
import { imageScoreByGuidance, pairSummary, promptClassByCategory, trainingCurves } from "./diagnostics.js";
import type { RunRecords } from "./records.js";
import { sweepLossCurves, sweepTable } from "./sweep.js";
import { benchmarksOf, detailTable, paperTable } from "../eval/summary.js";

export function buildDiagnostics(r: RunRecords) {
  const stages = Object.fromEntries(Object.entries(r.manifest.stages).map(([k, v]) => [k, { status: v.status, counts: v.counts ?? {}, seconds: v.seconds }]));
  const images = r.manifest.stages.images;
  // The image records are read a line at a time, once per chart (a run may have millions).
  const prompts = r.imagePrompts;
  const responses = r.manifest.stages.responses;
  // Seconds from the run's start: when each worker was started, served and stopped.
  const t0 = Date.parse(r.manifest.started_at);
  const at = (ts?: string) => (ts === undefined ? null : (Date.parse(ts) - t0) / 1000);
  const workers = Object.entries(r.manifest.workers).flatMap(([name, w]) =>
    (w.lifetimes ?? []).map((l) => ({ worker: l.replica ? `${name}.${l.replica}` : name, kind: w.kind, start_s: at(l.starting_at), ready_s: at(l.ready_at), stop_s: at(l.stopped_at) })),
  );
  return {
    schema: "pds-dpo/diagnostics@1",
    run_id: r.manifest.run_id,
    status: r.manifest.status,
    stages,
    workers,
    images:
      images && prompts
        ? {
            prompt_class_by_category: promptClassByCategory(each(prompts(), (p) => (p.instruction ? [{ category: p.category, instruction: p.instruction }] : []))),
            score_by_guidance: imageScoreByGuidance(each(prompts(), (p) => [p.candidates.map((c) => ({ guidanceScale: c.guidance_scale, score: c.score, kept: p.kept?.id === c.id }))])),
            dropped: countBy(each(prompts(), (p) => (p.kept ? [] : [p.dropped_reason ?? "unknown"]))),
          }
        : null,
    // The pairs in one pass over dataset/pairs.jsonl.
    responses: r.pairs
      ? {
          ...pairSummary(r.pairs()),
          dropped_candidates: responses?.dropped_candidates ?? {},
          dropped_images: responses?.dropped_images ?? {},
        }
      : null,
    train: r.trainSteps ? { curves: trainingCurves(r.trainSteps) } : r.pointSteps ? { curves: sweepLossCurves(r.pointSteps) } : null,
    evaluate: r.eval ? { results: r.eval, paper: paperTable(r.eval), benchmarks: benchmarksOf(r.eval).map((b) => ({ ...b, detail: detailTable(r.eval!, b.name) })), overlap: r.manifest.stages.evaluate?.overlap ?? null } : null,
    sweep: r.manifest.sweep ? sweepTable(r.manifest.sweep) : null,
  };
}

export type Diagnostics = ReturnType<typeof buildDiagnostics>;

/** Lazily, what f makes of each x (none, one or several). */
function* each<T, U>(xs: Iterable<T>, f: (x: T) => U[]): Generator<U> {
  for (const x of xs) yield* f(x);
}

function countBy(xs: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}
