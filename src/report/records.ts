// I/O: a run directory read into the records the diagnostics need. A stage that did not
// run (or whose files are missing) is absent, never an empty list.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Manifest } from "../manifest/types.js";
import type { EvalResult } from "../pipeline/stages/evaluate.js";
import type { PromptRecord } from "../pipeline/stages/images.js";
import { hasRecords, readLines, readRecords } from "../store/records.js";
import type { PairDiag } from "./diagnostics.js";

export interface RunRecords {
  runDir: string;
  manifest: Manifest;
  /** The image stage's prompt records, read again from records/images.jsonl each call. */
  imagePrompts?: () => Iterable<PromptRecord>;
  /** The dataset's pairs, read again from dataset/pairs.jsonl a line at a time each call. */
  pairs?: () => Iterable<ReportPair>;
  trainSteps?: Record<string, number>[];
  /** A sweep's steps, a point at a time. */
  pointSteps?: { name: string; steps: Record<string, number>[] }[];
  eval?: Omit<EvalResult, "answers">[];
}

export type ReportPair = PairDiag & { id: string; image: string; instruction: string; chosenModel: string; rejectedModel: string };

interface PairLine {
  id: string;
  images: string[];
  metadata: {
    instruction: string;
    chosen_id: string;
    rejected_id: string;
    margin: number;
    candidates: { id: string; responder: string; model: { id: string; revision: string }; text: string; score: number | null }[];
  };
}

const jsonl = <T>(path: string): T[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);

function reportPair(p: PairLine): ReportPair {
  const find = (id: string) => p.metadata.candidates.find((c) => c.id === id)!;
  const c = find(p.metadata.chosen_id);
  const r = find(p.metadata.rejected_id);
  return {
    id: p.id,
    image: p.images[0]!,
    instruction: p.metadata.instruction,
    chosen: { text: c.text, responder: c.responder, score: c.score ?? Number.NaN },
    rejected: { text: r.text, responder: r.responder, score: r.score ?? Number.NaN },
    chosenModel: `${c.model.id}@${c.model.revision}`,
    rejectedModel: `${r.model.id}@${r.model.revision}`,
    margin: p.metadata.margin,
  };
}

export function readRunRecords(runDir: string): RunRecords {
  const manifest = JSON.parse(readFileSync(join(runDir, "manifest.json"), "utf8")) as Manifest;
  const records: RunRecords = { runDir, manifest };
  const done = (stage: keyof Manifest["stages"]) => manifest.stages[stage]?.status === "succeeded";
  const imageRecords = manifest.stages.images?.records;
  if (hasRecords(runDir, imageRecords)) records.imagePrompts = () => readRecords<PromptRecord>(runDir, imageRecords!);
  const pairsPath = join(runDir, "dataset", "pairs.jsonl");
  if (done("responses") && existsSync(pairsPath)) {
    records.pairs = function* () {
      for (const line of readLines(pairsPath)) yield reportPair(JSON.parse(line) as PairLine);
    };
  }
  const metricsPath = join(runDir, "train", "metrics.jsonl");
  if (manifest.stages.train && existsSync(metricsPath)) records.trainSteps = jsonl<Record<string, number>>(metricsPath);
  // A sweep: each point's steps, from its own train/<point>/metrics.jsonl.
  const points = (manifest.stages.train?.points ?? []).filter((p) => p.metrics && existsSync(join(runDir, p.metrics)));
  if (points.length > 0) records.pointSteps = points.map((p) => ({ name: p.name, steps: jsonl<Record<string, number>>(join(runDir, p.metrics!)) }));
  const evalPath = join(runDir, "eval", "metrics.json");
  if (done("evaluate") && existsSync(evalPath)) records.eval = JSON.parse(readFileSync(evalPath, "utf8")) as RunRecords["eval"];
  return records;
}
