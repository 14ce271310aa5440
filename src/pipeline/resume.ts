// Pure: what a resumed run takes over from the events of its earlier attempt. Finished
// stages are not run again: their events feed the new manifest and their results (kept
// images, dataset, adapter) feed the stages still to run.
import type { StageName } from "../config/schema.js";
import type { EventOf, RunEvent } from "../events/types.js";
import type { StageResults } from "./stage.js";
import { STAGE_REGISTRY, stageOfEvent } from "./stages/index.js";

export { stageOfEvent };

export function finishedStages(events: RunEvent[]): StageName[] {
  return events.filter((e): e is EventOf<"stage.finished"> => e.type === "stage.finished" && e.status === "succeeded").map((e) => e.stage);
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

/** The results of the finished stages, each restored by its own stage from its events. */
export function resultsFromEvents(events: RunEvent[], runDir: string): StageResults {
  const results: StageResults = {};
  const done = new Set(finishedStages(events));
  for (const stage of STAGE_REGISTRY) {
    if (done.has(stage.name)) stage.restore(events.filter((e) => stageOfEvent(e) === stage.name), results, runDir);
  }
  return results;
}
