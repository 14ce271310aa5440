// The image stage: prompts x guidance scales x images per scale -> generate -> score ->
// keep the best per prompt. Generation and scoring run concurrently (different workers);
// each result is verified in the store and announced as it arrives.
import { ImageScorerServiceClient } from "../../gen/pdsdpo/v1/image_scorer.js";
import { StageFailedError } from "../../errors.js";
import type { ErrorInfo, RunEvent } from "../../events/types.js";
import { OutputMode, type Blob } from "../../gen/pdsdpo/v1/common.js";
import { ImageDefect, imageDefectToJSON, ImageGeneratorServiceClient, type GeneratedImage } from "../../gen/pdsdpo/v1/image_generator.js";
import { imageDiff, scoreDiff } from "../../manifest/diff.js";
import type { ArtifactRecord } from "../../manifest/types.js";
import { planImages, type ImageCandidate } from "../../plan/image-plan.js";
import { generateKeys, generateParams, imageScoreKeys, OPS } from "../../plan/item-keys.js";
import { selectBest, type CandidateOutcome } from "../../plan/select.js";
import type { ArtifactInfo, ContentStore } from "../../store/cas.js";
import type { ImageRecord } from "../../store/dataset-format.js";
import { ChunkGate, chunks } from "../../util/async-queue.js";
import { runCachedBatches } from "../batch-runner.js";
import { errorInfo, isTransient, scoreOutcome, type ScoreOutcome } from "../item-cache.js";
import { referencedWorkers, type Stage, type StageContext, type StageRun } from "../stage.js";
import { allOrAbort, blobRef } from "../stage-util.js";
import { listSource } from "../worker-pool.js";

/** A kept image as later stages, the dataset and a resumed run see it. */
export type KeptImage = ImageRecord & { promptIndex: number; artifact: ArtifactInfo };

type ImageEvent =
  | { type: "image.generated"; candidate: ImageCandidate; worker: string; artifact?: ArtifactInfo; defects: string[]; error?: ErrorInfo; seconds?: number; cached?: boolean }
  | { type: "image.scored"; id: string; worker: string; score?: number; components?: Record<string, number>; error?: ErrorInfo; cached?: boolean }
  | { type: "image.selected"; promptId: string; kept: string | null; score?: number; reason?: string; path?: string; sha256?: string };

export interface CandidateRecord {
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

export interface PromptRecord {
  id: string;
  index: number;
  category: string;
  t2i_prompt: string;
  instruction: string;
  candidates: CandidateRecord[];
  kept: { id: string; score: number; path: string; sha256: string } | null;
  dropped_reason?: string;
}

declare module "../../events/types.js" {
  interface StageEvents {
    images: ImageEvent;
  }
}
declare module "../../manifest/types.js" {
  interface StageSections {
    images: { prompts: PromptRecord[] };
  }
  interface ManifestOutputs {
    kept_images: { prompt_id: string; path: string; sha256: string }[];
  }
}
declare module "../stage.js" {
  interface StageResults {
    images?: KeptImage[];
    /** Generated candidates the scorer did not keep (no later stage trains on them): the evaluate stage's smoke-pope. */
    unkept?: UnkeptImage[];
  }
}

export interface UnkeptImage {
  id: string;
  promptId: string;
  category: string;
  artifact: ArtifactInfo;
}

/** The generated candidates that were not kept, in candidate order. */
function unkeptImages(generated: Iterable<{ candidate: ImageCandidate; artifact?: ArtifactInfo }>, kept: KeptImage[]): UnkeptImage[] {
  const keptSha = new Set(kept.map((k) => k.artifact.sha256));
  return [...generated].flatMap(({ candidate: c, artifact }) => (artifact && !keptSha.has(artifact.sha256) ? [{ id: c.id, promptId: c.promptId, category: c.category, artifact }] : []));
}

/** The one constructor of a kept-image record: from the run, and from a resumed run's events. */
function keptImage(candidate: ImageCandidate, score: number, artifact: ArtifactInfo, path: string): KeptImage {
  return {
    promptId: candidate.promptId,
    promptIndex: candidate.promptIndex,
    category: candidate.category,
    t2iPrompt: candidate.prompt,
    instruction: candidate.instruction,
    candidateId: candidate.id,
    guidanceScale: candidate.guidanceScale,
    score,
    sha256: artifact.sha256,
    artifact,
    path,
  };
}

function defectName(d: ImageDefect): string {
  return imageDefectToJSON(d).replace(/^IMAGE_DEFECT_/, "").toLowerCase();
}

/** One generated image as the stage keeps it (and the journal stores it). */
interface GenerateOutcome {
  id: string;
  artifact?: ArtifactInfo;
  defects: string[];
  error?: ErrorInfo;
  seconds?: number;
}

function generateOutcome(store: ContentStore, img: GeneratedImage): GenerateOutcome {
  const defects = img.defects.map(defectName);
  if (img.error) return { id: img.id, defects, error: errorInfo(img.error) };
  return { id: img.id, artifact: artifactOf(store, img.image), defects, seconds: img.seconds };
}

function artifactOf(store: ContentStore, blob: Blob | undefined): ArtifactInfo {
  const kind = blob?.kind;
  if (kind?.$case === "inline") return store.put(kind.value, "image/png");
  if (kind?.$case === "ref") {
    store.verify(kind.value);
    return { uri: kind.value.uri, sha256: kind.value.sha256, bytes: kind.value.bytes, mediaType: kind.value.mediaType };
  }
  throw new StageFailedError("the generator returned an image result without an image");
}

async function run(ctx: StageContext, stageRun: StageRun): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal } = ctx;
  const stage = loaded.config.stages.images!;
  const candidates = planImages(stage, loaded.prompts, loaded.config.seed, loaded.config.seed_policy);
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const outcomes = new Map<string, CandidateOutcome>();
  const artifacts = new Map<string, ArtifactInfo>();
  const counts = (stageRun.counts = { candidates: candidates.length, generated: 0, scored: 0 });
  stageRun.begin(candidates.length);

  const generator = pool.get(stage.generator);
  const scorer = pool.get(stage.scorer);
  // Scoring batches are fixed slices of the plan, released once generated: their make-up
  // never depends on timing, so neither do the scores.
  const toScore = new ChunkGate<{ candidate: ImageCandidate; artifact: ArtifactInfo }>(candidates.map((c) => c.id), scorer.batchSize);
  // The first failing task aborts the other; so does the run's own signal.
  const abort = new AbortController();
  const calls = AbortSignal.any([signal, abort.signal]);

  /** A generated image: computed now or reused from the journal. */
  const onGenerated = (img: GenerateOutcome, worker: string, cached: boolean) => {
    const candidate = byId.get(img.id);
    if (!candidate || outcomes.has(img.id)) return;
    const outcome: CandidateOutcome = { id: img.id, promptId: candidate.promptId, imageNumber: candidate.imageNumber, defects: img.defects };
    outcomes.set(img.id, outcome);
    counts.generated = outcomes.size;
    const c = cached ? { cached: true } : {};
    if (img.error) {
      outcome.error = img.error.message;
      bus.emit({ type: "image.generated", candidate, worker, defects: img.defects, error: img.error, ...c });
      toScore.resolve(img.id, null);
    } else {
      const artifact = img.artifact!;
      artifacts.set(img.id, artifact);
      bus.emit({ type: "image.generated", candidate, worker, artifact, defects: img.defects, seconds: img.seconds, ...c });
      toScore.resolve(img.id, img.defects.length === 0 ? { candidate, artifact } : null);
    }
    stageRun.progress("generate", outcomes.size, candidates.length);
  };
  const onScored = (s: ScoreOutcome, worker: string, cached: boolean) => {
    const outcome = outcomes.get(s.id);
    if (!outcome || outcome.score !== undefined || outcome.error !== undefined) return;
    counts.scored++;
    const c = cached ? { cached: true } : {};
    if (s.error) {
      outcome.error = s.error.message;
      bus.emit({ type: "image.scored", id: s.id, worker, error: s.error, ...c });
    } else {
      outcome.score = s.score;
      bus.emit({ type: "image.scored", id: s.id, worker, score: s.score, components: s.components, ...c });
    }
    stageRun.progress("score", counts.scored, candidates.length);
  };

  // Batches are formed from the plan order only, so which replica runs one never changes it.
  const generate = () =>
    runCachedBatches<ImageCandidate[], GenerateOutcome>(
      ctx,
      {
        stage: "images",
        op: OPS.generate,
        worker: stage.generator,
        source: listSource(chunks(candidates, generator.batchSize)),
        items: (chunk, replica) => generateKeys(replica.fingerprint, chunk),
        rpc: "Generate",
        async *call(replica, chunk, options) {
          const req = { items: chunk.map((c) => ({ id: c.id, ...generateParams(c) })), output: OutputMode.OUTPUT_MODE_STORE, maxBatchSize: chunk.length };
          for await (const msg of replica.client.stream(ImageGeneratorServiceClient, "Generate", (c, deadline) => c.generate(req, { deadline }), options)) {
            if (msg.event?.$case !== "image") continue;
            const img = generateOutcome(store, msg.event.value);
            yield { id: img.id, result: img, artifacts: img.artifact ? [img.artifact.sha256] : [], transient: isTransient(img.error) };
          }
        },
        onResult: (img, { replica, cached }) => onGenerated(img, replica.name, cached),
      },
      calls,
    ).finally(() => toScore.finish());

  const score = () =>
    runCachedBatches<{ candidate: ImageCandidate; artifact: ArtifactInfo }[], ScoreOutcome>(
      ctx,
      {
        stage: "images",
        op: OPS.imageScore,
        worker: stage.scorer,
        source: toScore.source(),
        items: (batch, replica) => imageScoreKeys(replica.fingerprint, batch.map(({ candidate, artifact }) => ({ candidate, sha256: artifact.sha256 }))),
        rpc: "Score",
        async *call(replica, batch, options) {
          const req = { items: batch.map(({ candidate, artifact }) => ({ id: candidate.id, prompt: candidate.prompt, image: blobRef(artifact) })), maxBatchSize: batch.length };
          for await (const msg of replica.client.stream(ImageScorerServiceClient, "Score", (c, deadline) => c.score(req, { deadline }), options)) {
            if (msg.event?.$case !== "score") continue;
            const s = scoreOutcome(msg.event.value);
            yield { id: s.id, result: s, transient: isTransient(s.error) };
          }
        },
        onResult: (s, { replica, cached }) => onScored(s, replica.name, cached),
      },
      calls,
    );

  await allOrAbort([generate(), score()], abort);

  const { kept, prompts } = keepBest(ctx, byId, outcomes, artifacts);
  const count = (pred: (o: CandidateOutcome) => boolean) => [...outcomes.values()].filter(pred).length;
  stageRun.counts = {
    prompts: loaded.prompts.length,
    candidates: candidates.length,
    generated: artifacts.size,
    defective: count((o) => o.defects.length > 0),
    failed: count((o) => o.error !== undefined),
    scored: count((o) => o.score !== undefined),
    kept: kept.length,
    dropped: prompts - kept.length,
  };
  ctx.results.images = kept;
  ctx.results.unkept = unkeptImages(candidates.map((candidate) => ({ candidate, artifact: artifacts.get(candidate.id) })), kept);
  if (kept.length === 0) bus.emit({ type: "warning", message: "no prompt kept an image (see the manifest's dropped reasons)" });
}

/** The best image of each prompt, placed in the run's images/ and announced; a prompt without one is announced with its reason. */
function keepBest(ctx: StageContext, byId: Map<string, ImageCandidate>, outcomes: Map<string, CandidateOutcome>, artifacts: Map<string, ArtifactInfo>) {
  const { bus, runDir, store } = ctx;
  const kept: KeptImage[] = [];
  const selections = selectBest([...outcomes.values()], ctx.loaded.config.stages.images!.min_score);
  for (const sel of selections) {
    if (sel.kept !== null) {
      const artifact = artifacts.get(sel.kept)!;
      const dest = runDir.imagePath(sel.promptId);
      runDir.placeArtifact(store.pathOf(artifact.sha256), dest);
      kept.push(keptImage(byId.get(sel.kept)!, sel.score, artifact, runDir.rel(dest)));
      bus.emit({ type: "image.selected", promptId: sel.promptId, kept: sel.kept, score: sel.score, path: runDir.rel(dest), sha256: artifact.sha256 });
    } else {
      bus.emit({ type: "image.selected", promptId: sel.promptId, kept: null, reason: sel.reason, score: sel.bestScore });
    }
  }
  return { kept: kept.sort((a, b) => a.promptIndex - b.promptIndex), prompts: selections.length };
}

function section() {
  const prompts = new Map<string, PromptRecord>();
  const candidates = new Map<string, CandidateRecord>();
  const artifacts: ArtifactRecord[] = [];
  return {
    listen(e: RunEvent) {
      if (e.type === "image.generated") {
        const c = e.candidate;
        let prompt = prompts.get(c.promptId);
        if (!prompt) prompts.set(c.promptId, (prompt = { id: c.promptId, index: c.promptIndex, category: c.category, t2i_prompt: c.prompt, instruction: c.instruction, candidates: [], kept: null }));
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
        candidates.set(c.id, rec);
        if (e.artifact) artifacts.push({ path: `cas/sha256/${e.artifact.sha256.slice(0, 2)}/${e.artifact.sha256}`, sha256: e.artifact.sha256, bytes: e.artifact.bytes, stage: "images", item: c.id, worker: e.worker });
      } else if (e.type === "image.scored") {
        const rec = candidates.get(e.id);
        if (!rec) return;
        rec.score = e.score;
        rec.score_components = e.components;
        rec.scored_by = e.worker;
        if (e.error) rec.error = e.error;
      } else if (e.type === "image.selected") {
        const prompt = prompts.get(e.promptId);
        if (!prompt) return;
        if (e.kept && e.path && e.sha256 !== undefined && e.score !== undefined) {
          prompt.kept = { id: e.kept, score: e.score, path: e.path, sha256: e.sha256 };
          artifacts.push({ path: e.path, sha256: e.sha256, bytes: candidates.get(e.kept)?.bytes ?? 0, stage: "images", item: e.promptId });
        } else {
          prompt.dropped_reason = e.reason;
        }
      }
    },
    build() {
      const list = [...prompts.values()].sort((a, b) => a.index - b.index);
      return {
        section: { prompts: list },
        outputs: { kept_images: list.filter((p) => p.kept).map((p) => ({ prompt_id: p.id, path: p.kept!.path, sha256: p.kept!.sha256 })) },
        artifacts,
      };
    },
  };
}

export const imagesStage: Stage<"images"> = {
  name: "images",
  events: ["image.generated", "image.scored", "image.selected"],
  cached: true,
  workers: (config) => referencedWorkers(config, "images"),
  plan({ loaded, forecast }) {
    const s = loaded.config.stages.images!;
    const candidates = planImages(s, loaded.prompts, loaded.config.seed, loaded.config.seed_policy);
    const f = forecast.images;
    return { prompts: loaded.prompts.length, candidates: candidates.length, model_items: f?.items ?? 0, cache_hits: f?.hits ?? 0, to_compute: f?.toCompute ?? 0 };
  },
  run,
  restore(events, results) {
    const generated = new Map<string, Extract<RunEvent, { type: "image.generated" }>>();
    const kept: KeptImage[] = [];
    for (const e of events) {
      if (e.type === "image.generated") generated.set(e.candidate.id, e);
      if (e.type === "image.selected" && e.kept && e.path && e.score !== undefined) {
        const g = generated.get(e.kept);
        if (g?.artifact) kept.push(keptImage(g.candidate, e.score, g.artifact, e.path));
      }
    }
    results.images = kept.sort((a, b) => a.promptIndex - b.promptIndex);
    results.unkept = unkeptImages(generated.values(), kept);
  },
  section,
  // Outputs first (image bytes), then the scores of them: a changed output is the cause,
  // changed scores of its batch-mates only follow from it.
  compare(before, after, tol, inputs) {
    const stage = "images";
    const promptsB = before.stages.images?.prompts ?? [];
    const promptsA = after.stages.images?.prompts ?? [];
    const afterById = new Map(promptsA.flatMap((p) => p.candidates.map((c) => [c.id, c] as const)));
    const candidates = promptsB.flatMap((p) => p.candidates);
    for (const c of candidates) {
      const r = afterById.get(c.id);
      if (!r) return { stage, item: c.id, what: "missing from the replay" };
      if (c.sha256 !== r.sha256) {
        const d = imageDiff(c.sha256, r.sha256, tol, inputs.images);
        if (d) return { stage, item: c.id, what: d };
      }
    }
    for (const c of candidates) {
      const s = scoreDiff(c.score, afterById.get(c.id)!.score, tol.score);
      if (s) return { stage, item: c.id, what: s };
    }
    for (const p of promptsB) {
      const kept = promptsA.find((q) => q.id === p.id);
      if (p.kept?.id !== kept?.kept?.id) return { stage, item: p.id, what: `kept ${String(p.kept?.id)} vs ${String(kept?.kept?.id)}` };
    }
    return null;
  },
  line(e) {
    if (e.type === "image.generated") {
      if (e.error) return `warning: ${e.candidate.id}: ${e.error.message}`;
      if (e.defects.length) return `warning: ${e.candidate.id}: defective image (${e.defects.join(", ")}), not kept`;
    }
    if (e.type === "image.scored" && e.error) return `warning: ${e.id}: not scored: ${e.error.message}`;
    return null;
  },
};
