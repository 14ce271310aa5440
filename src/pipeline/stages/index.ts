// The registry: every stage, in run order. A new stage is its module, one line here and
// its config schema.
import { STAGES, type StageName } from "../../config/schema.js";
import type { RunEvent } from "../../events/types.js";
import type { Stage } from "../stage.js";
import { evaluateStage } from "./evaluate.js";
import { imagesStage } from "./images.js";
import { responsesStage } from "./responses.js";
import { trainStage } from "./train.js";

const REGISTERED: Stage[] = [imagesStage, responsesStage, trainStage, evaluateStage] as Stage[];

/** The stages in the order of STAGES (the config's stage order). */
export const STAGE_REGISTRY: readonly Stage[] = STAGES.map((name) => {
  const s = REGISTERED.find((x) => x.name === name);
  if (!s) throw new Error(`stage '${name}' has no module in the registry`);
  return s;
});

export function stageOf(name: StageName): Stage {
  return STAGE_REGISTRY.find((s) => s.name === name)!;
}

/** The stage an event belongs to; null for run- and worker-level events. */
export function stageOfEvent(e: RunEvent): StageName | null {
  if (e.type === "stage.started" || e.type === "stage.progress" || e.type === "stage.finished") return e.stage;
  return STAGE_REGISTRY.find((s) => s.events.includes(e.type))?.name ?? null;
}

/** A terminal line for a stage's own event; null when it prints none. */
export function stageLine(e: RunEvent): string | null {
  const stage = stageOfEvent(e);
  return stage ? (stageOf(stage).line?.(e) ?? null) : null;
}
