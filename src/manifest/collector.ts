// Builds manifest.json from the run's events (the same stream the reporters see): the
// run- and worker-level parts here, each stage's section by the stage's own builder.
import type { ExperimentConfig, StageName } from "../config/schema.js";
import type { Listener } from "../events/bus.js";
import type { CacheMode, ErrorInfo, RunEvent } from "../events/types.js";
import type { SectionBuilder } from "../pipeline/stage.js";
import { STAGE_REGISTRY, stageOfEvent } from "../pipeline/stages/index.js";
import { sweepSection } from "./sweep.js";
import { MANIFEST_SCHEMA, type ArtifactRecord, type Manifest, type ManifestOutputs, type ManifestStages, type ManifestWorker, type OrchestratorInfo, type StageStatus } from "./types.js";

export { MANIFEST_SCHEMA };
export type { OrchestratorInfo };

export interface ManifestInput {
  runId: string;
  configFile: string;
  configSha256: string;
  prompts: { path: string; sha256: string };
  /** The run this one replays, if any. */
  replayOf?: string;
  config: ExperimentConfig;
  orchestrator: OrchestratorInfo;
}

export class ManifestCollector {
  private startedAt = new Date().toISOString();
  private finishedAt: string | null = null;
  private status: Manifest["status"] = "running";
  private error: ErrorInfo | undefined;
  private cacheMode: CacheMode = "use";
  private readonly workers: Record<string, ManifestWorker> = {};
  private readonly stages = new Map<StageName, StageStatus>();
  private readonly sections = new Map<StageName, SectionBuilder<StageName>>(STAGE_REGISTRY.map((s) => [s.name, s.section()]));

  constructor(private readonly input: ManifestInput) {}

  readonly listener: Listener = (e: RunEvent) => {
    switch (e.type) {
      case "run.started":
        this.startedAt = e.ts;
        this.cacheMode = e.cache;
        return;
      case "run.finished":
        this.finishedAt = e.ts;
        this.status = e.status;
        this.error = e.error;
        return;
      case "stage.started":
        this.stages.set(e.stage, { status: "running", total: e.total });
        return;
      case "stage.finished":
        this.stages.set(e.stage, { ...this.stages.get(e.stage), status: e.status, counts: e.counts, ...(e.cache ? { cache: { ...e.cache } } : {}), seconds: e.seconds });
        return;
      case "worker.starting": {
        if (e.replica === 0 && !this.workers[e.worker]) this.workers[e.worker] = { kind: e.kind, log: `logs/${e.worker}.log`, replicas: 0, requeues: [], lifetimes: [] };
        this.workers[e.worker]?.lifetimes.push({ replica: e.replica, starting_at: e.ts });
        return;
      }
      case "worker.ready": {
        const w = (this.workers[e.worker] ??= { kind: e.kind, replicas: 0, requeues: [], lifetimes: [] });
        // One entry per worker: every replica runs the same image and model (Describe of replica 0).
        if (e.replica === 0) Object.assign(w, { runtime: e.runtime, info: e.info, fingerprint: e.fingerprint });
        w.replicas = Math.max(w.replicas, e.replica + 1);
        const life = lastLifetime(w, e.replica);
        if (life) life.ready_at = e.ts;
        return;
      }
      case "worker.stopped": {
        const life = this.workers[e.worker] && lastLifetime(this.workers[e.worker]!, e.replica);
        if (life) life.stopped_at = e.ts;
        return;
      }
      case "worker.requeued":
        this.workers[e.worker]?.requeues.push({ replica: e.replica, items: e.items, reason: e.reason, at: e.ts });
        return;
      default: {
        const stage = stageOfEvent(e);
        if (stage) this.sections.get(stage)!.listen(e);
      }
    }
  };

  build(): Manifest {
    const stages: Record<string, unknown> = {};
    const outputs: Partial<ManifestOutputs> = {};
    const artifacts: ArtifactRecord[] = [];
    for (const { name } of STAGE_REGISTRY) {
      const status = this.stages.get(name);
      if (!status) continue;
      const built = this.sections.get(name)!.build();
      stages[name] = { ...status, ...built.section };
      Object.assign(outputs, built.outputs);
      artifacts.push(...(built.artifacts ?? []));
    }
    return {
      schema: MANIFEST_SCHEMA,
      run_id: this.input.runId,
      status: this.status,
      ...(this.error ? { error: this.error } : {}),
      started_at: this.startedAt,
      finished_at: this.finishedAt,
      orchestrator: this.input.orchestrator,
      config: { file: this.input.configFile, sha256: this.input.configSha256, resolved: this.input.config },
      cache: this.cacheMode,
      inputs: { prompts: this.input.prompts },
      ...(this.input.replayOf ? { replay_of: this.input.replayOf } : {}),
      workers: this.workers,
      stages: stages as ManifestStages,
      artifacts,
      outputs,
      ...sweepOf(stages as ManifestStages),
    };
  }
}

const sweepOf = (stages: ManifestStages) => {
  const sweep = sweepSection(stages);
  return sweep ? { sweep } : {};
};

/** The replica's latest start, which a ready or stop event completes. */
function lastLifetime(w: ManifestWorker, replica: number) {
  return w.lifetimes.findLast((l) => l.replica === replica);
}
