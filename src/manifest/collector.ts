// Builds manifest.json from the run's events (the same stream the reporters see).
import type { ExperimentConfig } from "../config/schema.js";
import type { Listener } from "../events/bus.js";
import type { ErrorInfo, RunEvent } from "../events/types.js";

export const MANIFEST_SCHEMA = "pds-dpo/manifest@1";

export interface OrchestratorInfo {
  version: string;
  gitCommit: string | null;
  node: string;
}

interface CandidateRecord {
  id: string;
  guidance_scale: number;
  image_number: number;
  seed: number;
  sha256?: string;
  bytes?: number;
  uri?: string;
  defects: string[];
  score?: number;
  score_components?: Record<string, number>;
  error?: ErrorInfo;
  generated_by?: string;
  scored_by?: string;
}

interface PromptRecord {
  id: string;
  index: number;
  category: string;
  t2i_prompt: string;
  candidates: CandidateRecord[];
  kept: { id: string; score: number; path: string; sha256: string } | null;
  dropped_reason?: string;
}

export interface ManifestInput {
  runId: string;
  configFile: string;
  configSha256: string;
  config: ExperimentConfig;
  orchestrator: OrchestratorInfo;
}

export class ManifestCollector {
  private startedAt = new Date().toISOString();
  private finishedAt: string | null = null;
  private status: "running" | "succeeded" | "failed" = "running";
  private error: ErrorInfo | undefined;
  private readonly workers: Record<string, Record<string, unknown>> = {};
  private readonly stages: Record<string, { status: string; total?: number; counts?: Record<string, number>; seconds?: number }> = {};
  private readonly prompts = new Map<string, PromptRecord>();
  private readonly candidates = new Map<string, CandidateRecord>();
  private readonly artifacts: { path: string; sha256: string; bytes: number; stage: string; item: string; worker?: string }[] = [];

  constructor(private readonly input: ManifestInput) {}

  readonly listener: Listener = (e: RunEvent) => {
    switch (e.type) {
      case "run.started":
        this.startedAt = e.ts;
        return;
      case "run.finished":
        this.finishedAt = e.ts;
        this.status = e.status;
        this.error = e.error;
        return;
      case "stage.started":
        this.stages[e.stage] = { status: "running", total: e.total };
        return;
      case "stage.finished":
        this.stages[e.stage] = { ...this.stages[e.stage], status: e.status, counts: e.counts, seconds: e.seconds };
        return;
      case "worker.starting":
        this.workers[e.worker] = { kind: e.kind, log: `logs/${e.worker}.log` };
        return;
      case "worker.ready":
        this.workers[e.worker] = { ...this.workers[e.worker], runtime: e.runtime, info: e.info };
        return;
      case "image.generated": {
        const c = e.candidate;
        let prompt = this.prompts.get(c.promptId);
        if (!prompt) {
          prompt = { id: c.promptId, index: c.promptIndex, category: c.category, t2i_prompt: c.prompt, candidates: [], kept: null };
          this.prompts.set(c.promptId, prompt);
        }
        const rec: CandidateRecord = {
          id: c.id,
          guidance_scale: c.guidanceScale,
          image_number: c.imageNumber,
          seed: c.seed,
          sha256: e.artifact?.sha256,
          bytes: e.artifact?.bytes,
          uri: e.artifact?.uri,
          defects: e.defects,
          error: e.error,
          generated_by: e.worker,
        };
        prompt.candidates.push(rec);
        prompt.candidates.sort((a, b) => a.image_number - b.image_number);
        this.candidates.set(c.id, rec);
        if (e.artifact) this.artifacts.push({ path: `cas/sha256/${e.artifact.sha256.slice(0, 2)}/${e.artifact.sha256}`, sha256: e.artifact.sha256, bytes: e.artifact.bytes, stage: "images", item: c.id, worker: e.worker });
        return;
      }
      case "image.scored": {
        const rec = this.candidates.get(e.id);
        if (!rec) return;
        rec.score = e.score;
        rec.score_components = e.components;
        rec.scored_by = e.worker;
        if (e.error) rec.error = e.error;
        return;
      }
      case "image.selected": {
        const prompt = this.prompts.get(e.promptId);
        if (!prompt) return;
        if (e.kept && e.path && e.sha256 !== undefined && e.score !== undefined) {
          prompt.kept = { id: e.kept, score: e.score, path: e.path, sha256: e.sha256 };
          const bytes = this.candidates.get(e.kept)?.bytes ?? 0;
          this.artifacts.push({ path: e.path, sha256: e.sha256, bytes, stage: "images", item: e.promptId });
        } else {
          prompt.dropped_reason = e.reason;
        }
        return;
      }
      default:
        return;
    }
  };

  build(): Record<string, unknown> {
    const prompts = [...this.prompts.values()].sort((a, b) => a.index - b.index);
    return {
      schema: MANIFEST_SCHEMA,
      run_id: this.input.runId,
      status: this.status,
      error: this.error,
      started_at: this.startedAt,
      finished_at: this.finishedAt,
      orchestrator: this.input.orchestrator,
      config: { file: this.input.configFile, sha256: this.input.configSha256, resolved: this.input.config },
      workers: this.workers,
      stages: {
        ...Object.fromEntries(Object.entries(this.stages)),
        ...(this.stages.images ? { images: { ...this.stages.images, prompts } } : {}),
      },
      artifacts: this.artifacts,
      outputs: {
        kept_images: prompts.filter((p) => p.kept).map((p) => ({ prompt_id: p.id, path: p.kept!.path, sha256: p.kept!.sha256 })),
      },
    };
  }
}
