// Pure: where a replay differs from the run it replays. Stages are compared in order, each
// by its own comparison, and the first difference is reported with its stage, item and how.
import { STAGE_REGISTRY } from "../pipeline/stages/index.js";
import { EXACT, type CompareInputs, type Difference, type Tolerance } from "./diff.js";
import type { Manifest } from "./types.js";

export { EXACT, parseTolerance } from "./diff.js";
export type { CompareInputs, Difference, ImageDistance, Tolerance } from "./diff.js";

export function firstDifference(before: Manifest, after: Manifest, tol: Tolerance = EXACT, inputs: CompareInputs = {}): Difference | null {
  for (const stage of STAGE_REGISTRY) {
    const b = before.stages[stage.name];
    const a = after.stages[stage.name];
    if (!b) continue;
    if (!a) return { stage: stage.name, item: "-", what: "the stage did not run in the replay" };
    if (b.status !== a.status) return { stage: stage.name, item: "-", what: `status ${b.status} vs ${a.status}` };
    const d = stage.compare(before, after, tol, inputs);
    if (d) return d;
  }
  return null;
}

/** What a replay cannot be pinned to: another resolved revision or image digest. */
export function fingerprintMismatch(before: Manifest, after: Manifest): string | null {
  for (const [name, w] of Object.entries(before.workers)) {
    const other = after.workers[name];
    const revB = w.info?.model?.resolvedRevision;
    const revA = other?.info?.model?.resolvedRevision;
    if (revB !== revA) return `worker '${name}': model revision ${String(revB)} is pinned but ${String(revA)} was loaded`;
    const digB = w.runtime?.image_digest;
    const digA = other?.runtime?.image_digest;
    if (digB !== digA) return `worker '${name}': image digest ${String(digB)} is pinned but ${String(digA)} ran`;
  }
  return null;
}
