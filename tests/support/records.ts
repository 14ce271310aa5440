// A run's per-item records (records/<stage>.jsonl), as tests read them.
import type { RecordsRef } from "../../src/store/records.js";
import type { PromptRecord } from "../../src/pipeline/stages/images.js";
import type { ImageAnswers } from "../../src/pipeline/stages/responses.js";
import { readRecords } from "../../src/store/records.js";

export function imagePrompts(runDir: string, m: { stages: { images?: { records?: RecordsRef } } }): PromptRecord[] {
  const ref = m.stages.images?.records;
  if (!ref) throw new Error("the manifest names no image records");
  return [...readRecords<PromptRecord>(runDir, ref)];
}

/** A run's per-image answer records (records/responses.jsonl, kept-image order). */
export function responseRecords(runDir: string, m: { stages: { responses?: { records?: RecordsRef } } }): ImageAnswers[] {
  const ref = m.stages.responses?.records;
  if (!ref) throw new Error("the manifest names no answer records");
  return [...readRecords<ImageAnswers>(runDir, ref)];
}
