// The manifest's shape, shared by the collector that writes it, replay comparison and the
// report that read it. Each stage module adds its section (StageSections) and its part of
// `outputs` (ManifestOutputs) by module augmentation, like the events.
import type { ExperimentConfig } from "../config/schema.js";
import type { CacheCounts, CacheMode, ErrorInfo } from "../events/types.js";
import type { WorkerFingerprint } from "../plan/cache-keys.js";

// @2: per-item records moved out of the manifest into records/<stage>.jsonl (the manifest names them by hash).
export const MANIFEST_SCHEMA = "pds-dpo/manifest@2";

export interface OrchestratorInfo {
  version: string;
  gitCommit: string | null;
  node: string;
}

/** What every stage's section holds, whatever the stage. */
export interface StageStatus {
  status: "running" | "succeeded" | "failed";
  total?: number;
  counts?: Record<string, number>;
  cache?: CacheCounts;
  seconds?: number;
}

// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface StageSections {}
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface ManifestOutputs {}

export type ManifestStages = { [K in keyof StageSections]?: StageStatus & Partial<StageSections[K]> };

export interface ArtifactRecord {
  path: string;
  sha256: string;
  bytes: number;
  stage: string;
  item: string;
  worker?: string;
}

export interface WorkerLifetime {
  replica: number;
  starting_at: string;
  ready_at?: string;
  stopped_at?: string;
}

export interface ManifestWorker {
  kind: string;
  log?: string;
  replicas: number;
  requeues: { replica: number; items: number; reason: string; at: string }[];
  /** Each start of each replica: when it was asked to start, served, and stopped (a restart adds one). */
  lifetimes: WorkerLifetime[];
  runtime?: Record<string, unknown>;
  /** The worker's Describe (WorkerInfo as JSON). */
  info?: { model?: { resolvedRevision?: string; spec?: { id?: string; path?: string } } } & Record<string, unknown>;
  fingerprint?: WorkerFingerprint | null;
}

export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  run_id: string;
  status: "running" | "succeeded" | "failed";
  error?: ErrorInfo;
  started_at: string;
  finished_at: string | null;
  orchestrator: OrchestratorInfo;
  config: { file: string; sha256: string; resolved: ExperimentConfig };
  cache: CacheMode;
  inputs: { prompts: { path: string; sha256: string } };
  replay_of?: string;
  workers: Record<string, ManifestWorker>;
  stages: ManifestStages;
  artifacts: ArtifactRecord[];
  outputs: Partial<ManifestOutputs>;
}
