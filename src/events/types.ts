// The one event model: TTY progress, --json lines, events.jsonl and the manifest all
// subscribe to these. Run- and worker-level events are declared here; each stage module
// declares its own events by adding an entry to StageEvents (module augmentation), so a new
// stage never edits this file and this file never imports a stage.
import type { StageName, WorkerKindName } from "../config/schema.js";
import type { WorkerFingerprint } from "../plan/cache-keys.js";

export interface ErrorInfo {
  code: string;
  message: string;
  /** The same input fails the same way every time (set by the worker): such a failure may be journaled. */
  deterministic?: boolean;
}

/** use: reuse any journaled item; off: compute everything (--no-cache, replay); own-run: reuse only this run's items (resume of a --no-cache run). */
export type CacheMode = "use" | "off" | "own-run";

export interface CacheCounts {
  hits: number;
  computed: number;
  model_calls: number;
}

export type CoreEventBody =
  | { type: "run.started"; runId: string; runDir: string; configFile: string; configSha256: string; stages: StageName[]; cache: CacheMode }
  | { type: "run.finished"; runId: string; status: "succeeded" | "failed"; error?: ErrorInfo; seconds: number }
  | { type: "stage.started"; stage: StageName; total: number }
  | { type: "stage.progress"; stage: StageName; step: string; done: number; total: number }
  | { type: "stage.finished"; stage: StageName; status: "succeeded" | "failed"; counts: Record<string, number>; cache?: CacheCounts; seconds: number }
  | { type: "worker.starting"; worker: string; replica: number; kind: WorkerKindName; logPath: string }
  /** A step of a starting worker's load (building a tiny model, hashing files, loading N of M weights); seconds since its start. */
  | { type: "worker.loading"; worker: string; replica: number; step: string; done: number; total: number; seconds: number }
  | { type: "worker.ready"; worker: string; replica: number; kind: WorkerKindName; address: string; pid: number; info: unknown; runtime: Record<string, unknown>; fingerprint: WorkerFingerprint | null; startup?: { listening_s: number; serving_s: number }; seconds: number }
  | { type: "worker.stopped"; worker: string; replica: number; exitCode: number | null; signal: string | null }
  | { type: "worker.requeued"; worker: string; replica: number; items: number; reason: string }
  | { type: "warning"; message: string };

/**
 * Each stage's own events, keyed by stage name: a stage module adds
 * `declare module "<path>/events/types.js" { interface StageEvents { <stage>: <its union> } }`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface StageEvents {}

export type StageEventBody = StageEvents[keyof StageEvents];
export type RunEventBody = CoreEventBody | StageEventBody;
export type RunEvent = RunEventBody & { ts: string };
export type RunEventType = RunEvent["type"];
/** One event type's event. */
export type EventOf<T extends RunEventType> = Extract<RunEvent, { type: T }>;
