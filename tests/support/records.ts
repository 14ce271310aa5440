// A run's image records (records/images.jsonl, a prompt a line), as tests read them.
import type { RecordsRef } from "../../src/store/records.js";
import type { PromptRecord } from "../../src/pipeline/stages/images.js";
import { readRecords } from "../../src/store/records.js";

export function imagePrompts(runDir: string, m: { stages: { images?: { records?: RecordsRef } } }): PromptRecord[] {
  const ref = m.stages.images?.records;
  if (!ref) throw new Error("the manifest names no image records");
  return [...readRecords<PromptRecord>(runDir, ref)];
}
