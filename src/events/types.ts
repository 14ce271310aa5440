// The one event model: TTY progress, --json lines, events.jsonl and the manifest all
// subscribe to these.
import type { StageName, WorkerKindName } from "../config/schema.js";
import type { WorkerFingerprint } from "../plan/cache-keys.js";
import type { ImageCandidate } from "../plan/image-plan.js";
import type { ArtifactInfo } from "../store/cas.js";
import type { CacheCounts, CacheMode } from "../pipeline/item-cache.js";
import type { AnswerRecord } from "../store/dataset-format.js";

export interface ErrorInfo {
  code: string;
  message: string;
}

export type RunEventBody =
  | { type: "run.started"; runId: string; runDir: string; configFile: string; configSha256: string; stages: StageName[]; cache: CacheMode }
  | { type: "run.finished"; runId: string; status: "succeeded" | "failed"; error?: ErrorInfo; seconds: number }
  | { type: "stage.started"; stage: StageName; total: number }
  | { type: "stage.progress"; stage: StageName; step: string; done: number; total: number }
  | { type: "stage.finished"; stage: StageName; status: "succeeded" | "failed"; counts: Record<string, number>; cache?: CacheCounts; seconds: number }
  | { type: "worker.starting"; worker: string; replica: number; kind: WorkerKindName; logPath: string }
  | { type: "worker.ready"; worker: string; replica: number; kind: WorkerKindName; address: string; pid: number; info: unknown; runtime: Record<string, unknown>; fingerprint: WorkerFingerprint | null; startup?: { listening_s: number; serving_s: number }; seconds: number }
  | { type: "worker.stopped"; worker: string; replica: number; exitCode: number | null; signal: string | null }
  | { type: "worker.requeued"; worker: string; replica: number; items: number; reason: string }
  | { type: "image.generated"; candidate: ImageCandidate; worker: string; artifact?: ArtifactInfo; defects: string[]; error?: ErrorInfo; seconds?: number; cached?: boolean }
  | { type: "image.scored"; id: string; worker: string; score?: number; components?: Record<string, number>; error?: ErrorInfo; cached?: boolean }
  | { type: "image.selected"; promptId: string; kept: string | null; score?: number; reason?: string; path?: string; sha256?: string }
  | { type: "response.generated"; answer: AnswerRecord; worker: string; cached?: boolean }
  | { type: "response.scored"; id: string; worker: string; score?: number; components?: Record<string, number>; error?: ErrorInfo; cached?: boolean }
  | {
      type: "pairs.selected";
      promptId: string;
      pairs: { id: string; chosen: string; rejected: string; margin: number }[];
      droppedCandidates: { id: string; reason: string }[];
      droppedPair?: string;
    }
  | { type: "dataset.written"; files: { path: string; sha256: string; bytes: number }[]; pairs: number }
  | { type: "train.step"; step: number; epoch: number; metrics: Record<string, number>; cached?: boolean }
  | { type: "train.checkpoint"; step: number; path: string }
  | { type: "train.finished"; steps: number; interrupted: boolean; adapter: { path: string; sha256: string; bytes: number }; metricsPath: string }
  | { type: "eval.result"; benchmark: string; split: string; model: "base" | "trained"; metrics: Record<string, number>; answers?: string }
  | { type: "warning"; message: string };

export type RunEvent = RunEventBody & { ts: string };
export type RunEventType = RunEvent["type"];
