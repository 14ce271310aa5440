// Pure: what a resumed run takes over from the events of its earlier attempt. Finished
// stages are not run again: their events feed the new manifest and their results (kept
// images, dataset, adapter) feed the stages still to run.
import type { StageName } from "../config/schema.js";
import type { RunEvent } from "../events/types.js";
import type { KeptImage, StageResults } from "./stage-context.js";

/** The stage an event belongs to; null for run- and worker-level events. */
export function stageOfEvent(e: RunEvent): StageName | null {
  switch (e.type) {
    case "stage.started":
    case "stage.progress":
    case "stage.finished":
      return e.stage;
    case "image.generated":
    case "image.scored":
    case "image.selected":
      return "images";
    case "response.generated":
    case "response.scored":
    case "pairs.selected":
    case "dataset.written":
      return "responses";
    case "train.step":
    case "train.checkpoint":
    case "train.finished":
      return "train";
    case "eval.result":
      return "evaluate";
    default:
      return null;
  }
}

export function finishedStages(events: RunEvent[]): StageName[] {
  return events.filter((e): e is Extract<RunEvent, { type: "stage.finished" }> => e.type === "stage.finished" && e.status === "succeeded").map((e) => e.stage);
}

/**
 * The events of finished stages, in order, and the worker events of workers that are not
 * started again (the manifest keeps their Describe); everything of unfinished stages is dropped.
 */
export function carriedEvents(events: RunEvent[], restarted: ReadonlySet<string> = new Set()): RunEvent[] {
  const done = new Set(finishedStages(events));
  return events.filter((e) => {
    if (e.type === "worker.starting" || e.type === "worker.ready" || e.type === "worker.requeued") return !restarted.has(e.worker);
    const stage = stageOfEvent(e);
    return stage !== null && done.has(stage);
  });
}

export function resultsFromEvents(events: RunEvent[]): StageResults {
  const results: StageResults = {};
  const done = new Set(finishedStages(events));
  if (done.has("images")) {
    const generated = new Map<string, Extract<RunEvent, { type: "image.generated" }>>();
    const kept: KeptImage[] = [];
    for (const e of events) {
      if (e.type === "image.generated") generated.set(e.candidate.id, e);
      if (e.type === "image.selected" && e.kept && e.path && e.score !== undefined) {
        const g = generated.get(e.kept);
        if (!g?.artifact) continue;
        kept.push({
          promptId: e.promptId,
          promptIndex: g.candidate.promptIndex,
          category: g.candidate.category,
          t2iPrompt: g.candidate.prompt,
          instruction: g.candidate.instruction,
          candidateId: e.kept,
          guidanceScale: g.candidate.guidanceScale,
          score: e.score,
          artifact: g.artifact,
          path: e.path,
        });
      }
    }
    results.images = kept.sort((a, b) => a.promptIndex - b.promptIndex);
  }
  for (const e of events) {
    if (e.type === "dataset.written" && done.has("responses")) {
      const f = e.files.find((x) => x.path.endsWith("pairs.jsonl"))!;
      results.dataset = { path: f.path, sha256: f.sha256, pairs: e.pairs };
    }
    if (e.type === "train.finished" && done.has("train")) results.adapter = { dir: e.adapter.path.replace(/\/adapter_model\.safetensors$/, ""), sha256: e.adapter.sha256 };
  }
  return results;
}
