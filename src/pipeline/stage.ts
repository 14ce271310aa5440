// A stage of the pipeline as one unit: what it runs, which workers it needs, what `plan`
// forecasts for it, how a resumed run restores its results from events, its manifest
// section, its replay comparison and its terminal lines. The registry (stages/index.ts)
// lists them in order; run, resume, the manifest, compare, plan and the report iterate it.
import type { LoadedConfig } from "../config/load.js";
import { referencedNames, WORKER_REFERENCES, type ExperimentConfig, type StageName } from "../config/schema.js";
import type { EventBus } from "../events/bus.js";
import type { RunEvent, RunEventType } from "../events/types.js";
import type { CompareInputs, Difference, Tolerance } from "../manifest/diff.js";
import type { ArtifactRecord, Manifest, ManifestOutputs, StageSections } from "../manifest/types.js";
import type { StageForecast } from "../plan/cache-forecast.js";
import type { ContentStore } from "../store/cas.js";
import type { RunDir } from "../store/run-dir.js";
import type { ItemCache } from "./item-cache.js";
import type { WorkerPool } from "./worker-pool.js";

/** What stages hand to later stages (kept images, the dataset, adapters); each stage adds its part by module augmentation. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface StageResults {}

export interface StageContext {
  loaded: LoadedConfig;
  bus: EventBus;
  store: ContentStore;
  runDir: RunDir;
  pool: WorkerPool;
  signal: AbortSignal;
  results: StageResults;
  cache: ItemCache;
}

/** One execution of a stage, owned by executeStage: the stage reports its total, progress and counts through it. */
export interface StageRun {
  /** Emits stage.started with the stage's item total (once; executeStage emits it with 0 if the stage never does). */
  begin(total: number): void;
  progress(step: string, done: number, total: number): void;
  /** What stage.finished reports, also when the stage fails: kept up to date by the stage. */
  counts: Record<string, number>;
}

type SectionOf<N extends StageName> = N extends keyof StageSections ? StageSections[N] : Record<string, never>;

/** Builds a stage's manifest section from the stage's own events. */
export interface SectionBuilder<N extends StageName> {
  listen(e: RunEvent): void;
  build(): { section: SectionOf<N>; outputs?: Partial<ManifestOutputs>; artifacts?: ArtifactRecord[] };
}

/** What `plan` knows before anything runs: the forecast of cache hits per stage. */
export interface PlanInput {
  loaded: LoadedConfig;
  forecast: Partial<Record<StageName, StageForecast>>;
}

export interface Stage<N extends StageName = StageName> {
  readonly name: N;
  /** The event types this stage emits besides stage.*: resume carries them for a finished stage, the manifest section reads them. */
  readonly events: readonly RunEventType[];
  /** Per-item events whose content its records hold: events.jsonl keeps them, a resumed run does not read them. */
  readonly recordEvents?: readonly RunEventType[];
  /** Whether its items go through the journal (stage.finished then reports cache counts). */
  readonly cached: boolean;
  /** The workers it needs, in config order of the references. */
  workers(config: ExperimentConfig): string[];
  /** Item counts `plan` shows (upper bounds where earlier stages decide). */
  plan(input: PlanInput): Record<string, number>;
  run(ctx: StageContext, run: StageRun): Promise<void>;
  /** A finished stage of an earlier attempt: its results for the stages still to run, from its events (and the records in runDir they name). */
  restore(events: RunEvent[], results: StageResults, runDir: string): void;
  section(): SectionBuilder<N>;
  /** The first difference of a replay in this stage (both ran it with the same status). */
  compare(before: Manifest, after: Manifest, tol: Tolerance, inputs: CompareInputs): Difference | null;
  /** A terminal line for one of its events; null prints nothing. */
  line?(e: RunEvent): string | null;
}

/** The workers a stage's config fields name (WORKER_REFERENCES of the schema). */
export function referencedWorkers(config: ExperimentConfig, stage: StageName): string[] {
  // A worker named twice (one judge of two benchmarks) is used once.
  return [...new Set(WORKER_REFERENCES.filter((ref) => ref.stage === stage).flatMap((ref) => referencedNames(config.stages, ref)))];
}

/** Runs one stage: owns its stage.started/finished events (failed too) and its timing. */
export async function executeStage(stage: Stage, ctx: StageContext): Promise<void> {
  const t0 = performance.now();
  let begun = false;
  const run: StageRun = {
    begin(total) {
      if (begun) return;
      begun = true;
      ctx.bus.emit({ type: "stage.started", stage: stage.name, total });
    },
    progress(step, done, total) {
      ctx.bus.emit({ type: "stage.progress", stage: stage.name, step, done, total });
    },
    counts: {},
  };
  const finish = (status: "succeeded" | "failed") => {
    run.begin(0);
    ctx.bus.emit({
      type: "stage.finished",
      stage: stage.name,
      status,
      counts: { ...run.counts },
      ...(stage.cached ? { cache: ctx.cache.countsOf(stage.name) } : {}),
      seconds: (performance.now() - t0) / 1000,
    });
  };
  try {
    await stage.run(ctx, run);
  } catch (e) {
    finish("failed");
    throw e;
  }
  finish("succeeded");
}
