// Builds manifest.json from the run's events (the same stream the reporters see).
import type { ExperimentConfig } from "../config/schema.js";
import type { Listener } from "../events/bus.js";
import type { ErrorInfo, RunEvent } from "../events/types.js";
import { sha256 } from "../store/cas.js";

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
  instruction: string;
  candidates: CandidateRecord[];
  kept: { id: string; score: number; path: string; sha256: string } | null;
  dropped_reason?: string;
}

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
  private status: "running" | "succeeded" | "failed" = "running";
  private error: ErrorInfo | undefined;
  private readonly workers: Record<string, Record<string, unknown>> = {};
  private readonly stages: Record<string, { status: string; total?: number; counts?: Record<string, number>; cache?: Record<string, number>; seconds?: number }> = {};
  private cacheMode = "use";
  private readonly prompts = new Map<string, PromptRecord>();
  private readonly candidates = new Map<string, CandidateRecord>();
  private readonly answers = new Map<string, Record<string, unknown>>();
  private readonly pairs: { prompt_id: string; pairs: unknown[]; dropped_pair?: string }[] = [];
  private readonly droppedCandidates: Record<string, number> = {};
  private readonly droppedImages: Record<string, number> = {};
  private train: { steps: { step: number; metrics: Record<string, number> }[]; checkpoints: { step: number; path: string }[]; result?: Record<string, unknown> } = { steps: [], checkpoints: [] };
  private readonly evals: { benchmark: string; split: string; model: string; metrics: Record<string, number>; answers?: string }[] = [];
  private dataset: { files: { path: string; sha256: string; bytes: number }[]; pairs: number } | undefined;
  private readonly artifacts: { path: string; sha256: string; bytes: number; stage: string; item: string; worker?: string }[] = [];

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
        this.stages[e.stage] = { status: "running", total: e.total };
        return;
      case "stage.finished":
        this.stages[e.stage] = { ...this.stages[e.stage], status: e.status, counts: e.counts, ...(e.cache ? { cache: { ...e.cache } } : {}), seconds: e.seconds };
        return;
      case "worker.starting":
        if (e.replica === 0 && !this.workers[e.worker]) this.workers[e.worker] = { kind: e.kind, log: `logs/${e.worker}.log`, replicas: 0, requeues: [] };
        return;
      case "worker.ready": {
        const w = this.workers[e.worker] ?? (this.workers[e.worker] = { kind: e.kind, requeues: [] });
        // One entry per worker: every replica runs the same image and model (Describe of replica 0).
        if (e.replica === 0) Object.assign(w, { runtime: e.runtime, info: e.info, fingerprint: e.fingerprint });
        w.replicas = Math.max(Number(w.replicas ?? 0), e.replica + 1);
        return;
      }
      case "worker.requeued": {
        const w = this.workers[e.worker];
        if (w) (w.requeues as unknown[]).push({ replica: e.replica, items: e.items, reason: e.reason, at: e.ts });
        return;
      }
      case "image.generated": {
        const c = e.candidate;
        let prompt = this.prompts.get(c.promptId);
        if (!prompt) {
          prompt = { id: c.promptId, index: c.promptIndex, category: c.category, t2i_prompt: c.prompt, instruction: c.instruction, candidates: [], kept: null };
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
      case "response.generated": {
        const a = e.answer;
        // Texts live in dataset/pairs.jsonl; the manifest keeps their hashes.
        this.answers.set(a.id, {
          id: a.id,
          prompt_id: a.promptId,
          responder: a.responder,
          sample_index: a.sampleIndex,
          finish_reason: a.finishReason,
          num_tokens: a.numTokens,
          words: a.text.trim() ? a.text.trim().split(/\s+/).length : 0,
          text_sha256: sha256(a.text),
          ...(a.error ? { error: a.error } : {}),
          scores: {},
        });
        return;
      }
      case "response.scored": {
        const a = this.answers.get(e.id);
        if (!a) return;
        if (e.score !== undefined) (a.scores as Record<string, number>)[e.worker] = e.score;
        if (e.error) a.error ??= `${e.worker}: ${e.error.code}: ${e.error.message}`;
        return;
      }
      case "pairs.selected":
        this.pairs.push({ prompt_id: e.promptId, pairs: e.pairs, ...(e.droppedPair && e.pairs.length === 0 ? { dropped_pair: e.droppedPair } : {}) });
        for (const d of e.droppedCandidates) this.droppedCandidates[d.reason] = (this.droppedCandidates[d.reason] ?? 0) + 1;
        if (e.droppedPair && e.pairs.length === 0) this.droppedImages[e.droppedPair] = (this.droppedImages[e.droppedPair] ?? 0) + 1;
        return;
      case "train.step":
        this.train.steps.push({ step: e.step, metrics: e.metrics });
        return;
      case "train.checkpoint":
        this.train.checkpoints.push({ step: e.step, path: e.path });
        return;
      case "train.finished":
        this.train.result = { steps: e.steps, interrupted: e.interrupted, adapter: e.adapter, metrics: e.metricsPath };
        this.artifacts.push({ path: e.adapter.path, sha256: e.adapter.sha256, bytes: e.adapter.bytes, stage: "train", item: "adapter" });
        return;
      case "eval.result":
        this.evals.push({ benchmark: e.benchmark, split: e.split, model: e.model, metrics: e.metrics, answers: e.answers });
        return;
      case "dataset.written":
        this.dataset = { files: e.files, pairs: e.pairs };
        for (const f of e.files) this.artifacts.push({ path: f.path, sha256: f.sha256, bytes: f.bytes, stage: "responses", item: "dataset" });
        return;
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
      cache: this.cacheMode,
      inputs: { prompts: this.input.prompts },
      ...(this.input.replayOf ? { replay_of: this.input.replayOf } : {}),
      workers: this.workers,
      stages: {
        ...Object.fromEntries(Object.entries(this.stages)),
        ...(this.stages.images ? { images: { ...this.stages.images, prompts } } : {}),
        ...(this.stages.responses
          ? {
              responses: {
                ...this.stages.responses,
                dropped_candidates: this.droppedCandidates,
                dropped_images: this.droppedImages,
                answers: [...this.answers.values()],
                pairs: this.pairs,
              },
            }
          : {}),
        ...(this.stages.evaluate ? { evaluate: { ...this.stages.evaluate, results: this.evals } } : {}),
        ...(this.stages.train
          ? { train: { ...this.stages.train, ...this.train.result, final_metrics: this.train.steps.at(-1)?.metrics, checkpoints: this.train.checkpoints } }
          : {}),
      },
      artifacts: this.artifacts,
      outputs: {
        kept_images: prompts.filter((p) => p.kept).map((p) => ({ prompt_id: p.id, path: p.kept!.path, sha256: p.kept!.sha256 })),
        ...(this.evals.length ? { eval: this.evals.map(({ benchmark, split, model, metrics }) => ({ benchmark, split, model, metrics })) } : {}),
        ...(this.train.result ? { adapter_sha256: (this.train.result.adapter as { sha256: string }).sha256 } : {}),
        ...(this.dataset ? { dataset: { pairs: this.dataset.pairs, files: this.dataset.files, sha256: this.dataset.files.find((f) => f.path.endsWith("pairs.jsonl"))?.sha256 } } : {}),
      },
    };
  }
}
