// The image stage: prompts x guidance scales x images per scale -> generate -> score ->
// keep the best per prompt. Generation and scoring run concurrently (different workers);
// each result is verified in the store and announced as it arrives.
import { ImageScorerServiceClient } from "../../gen/pdsdpo/v1/image_scorer.js";
import { StageFailedError } from "../../errors.js";
import type { ErrorInfo, RunEvent } from "../../events/types.js";
import { OutputMode, type Blob } from "../../gen/pdsdpo/v1/common.js";
import { ImageDefect, imageDefectToJSON, ImageGeneratorServiceClient, type GeneratedImage } from "../../gen/pdsdpo/v1/image_generator.js";
import { imageDiff, scoreDiff } from "../../manifest/diff.js";
import { imagePlan, type ImageCandidate } from "../../plan/image-plan.js";
import { generateKeys, generateParams, imageScoreKeys, OPS } from "../../plan/item-keys.js";
import { selectBest, type CandidateOutcome } from "../../plan/select.js";
import type { ArtifactInfo, ContentStore } from "../../store/cas.js";
import type { ImageRecord } from "../../store/dataset-format.js";
import { readRecords, recordsPath, recordsToCompare, RecordsWriter, type RecordsRef } from "../../store/records.js";
import { ChunkGate, Waiters } from "../../util/async-queue.js";
import { noResult, runCachedBatches } from "../batch-runner.js";
import { errorInfo, isTransient, scoreOutcome, type ScoreOutcome } from "../item-cache.js";
import { referencedWorkers, type Stage, type StageContext, type StageResults, type StageRun } from "../stage.js";
import { allOrAbort, blobRef } from "../stage-util.js";
import { PIPELINE_DEPTH, type BatchSource } from "../worker-pool.js";

/** A kept image as later stages, the dataset and a resumed run see it. */
export type KeptImage = ImageRecord & { promptIndex: number; artifact: ArtifactInfo };

type ImageEvent =
  | { type: "image.generated"; candidate: ImageCandidate; worker: string; artifact?: ArtifactInfo; defects: string[]; error?: ErrorInfo; seconds?: number; cached?: boolean }
  | { type: "image.scored"; id: string; worker: string; score?: number; components?: Record<string, number>; error?: ErrorInfo; cached?: boolean }
  | { type: "image.selected"; promptId: string; kept: string | null; score?: number; reason?: string; path?: string; sha256?: string }
  /** The stage's per-prompt records are written (records/images.jsonl, prompt order). */
  | { type: "image.records"; records: RecordsRef };

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
    /** Every prompt with its candidates, scores and kept image: in records/images.jsonl, a prompt a line. */
    images: { records: RecordsRef };
  }
  interface ManifestOutputs {
    /** The kept images are named in the image records (each prompt's `kept`). */
    kept_images: { records: string; sha256: string };
  }
}
declare module "../stage.js" {
  interface StageResults {
    /** Read from the stage's records when called (a later stage's input, never held by the run). */
    images?: () => Iterable<KeptImage>;
    /** Generated candidates the scorer did not keep (no later stage trains on them): the evaluate stage's smoke-pope. */
    unkept?: () => UnkeptImage[];
  }
}

export interface UnkeptImage {
  id: string;
  promptId: string;
  category: string;
  artifact: ArtifactInfo;
}

/** A prompt's kept image, rebuilt from its record (the run, a resumed run and later stages read records). */
function keptOfRecord(p: PromptRecord): KeptImage | null {
  if (!p.kept) return null;
  const c = p.candidates.find((x) => x.id === p.kept!.id);
  if (!c?.sha256) return null;
  const artifact: ArtifactInfo = { uri: c.uri ?? "", sha256: c.sha256, bytes: c.bytes ?? 0, mediaType: "image/png" };
  return {
    promptId: p.id,
    promptIndex: p.index,
    category: p.category,
    t2iPrompt: p.t2i_prompt,
    instruction: p.instruction,
    candidateId: c.id,
    guidanceScale: c.guidance_scale,
    score: p.kept.score,
    sha256: c.sha256,
    artifact,
    path: p.kept.path,
  };
}

/** The generated candidates of a prompt that were not kept, in candidate order. */
function unkeptOfRecord(p: PromptRecord): UnkeptImage[] {
  return p.candidates.flatMap((c) =>
    c.sha256 && c.id !== p.kept?.id && c.sha256 !== p.kept?.sha256 ? [{ id: c.id, promptId: p.id, category: p.category, artifact: { uri: c.uri ?? "", sha256: c.sha256, bytes: c.bytes ?? 0, mediaType: "image/png" } }] : [],
  );
}

/** What later stages read of the image stage: read from its records when asked, never held by the run. */
function resultsOfRecords(runDir: string, ref: RecordsRef, results: StageResults): void {
  results.images = function* () {
    for (const p of readRecords<PromptRecord>(runDir, ref)) {
      const kept = keptOfRecord(p);
      if (kept) yield kept;
    }
  };
  results.unkept = () => {
    // Of every prompt, so a kept image's byte-equal twin under another prompt is left out too.
    const kept = new Set<string>();
    const out: UnkeptImage[] = [];
    for (const p of readRecords<PromptRecord>(runDir, ref)) {
      if (p.kept) kept.add(p.kept.sha256);
      out.push(...unkeptOfRecord(p));
    }
    return out.filter((u) => !kept.has(u.artifact.sha256));
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

/** One prompt whose candidates are not all settled yet: its record, filled as results come. */
interface OpenPrompt {
  record: PromptRecord;
  outcomes: (CandidateOutcome | undefined)[];
  artifacts: (ArtifactInfo | undefined)[];
  /** Candidates not yet settled (generated with a defect or error, or scored). */
  pending: number;
}

/** Candidates dispatched ahead of the last written prompt: bounds what the stage holds. */
export function inFlightWindow(perPrompt: number, generateBatch: number, generators: number, scoreBatch: number, scorers: number): number {
  // Enough that every replica keeps its pipeline full and a scoring slice can always fill.
  return Math.max(4096, 4 * PIPELINE_DEPTH * (generateBatch * generators + scoreBatch * scorers) + perPrompt);
}

async function run(ctx: StageContext, stageRun: StageRun): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal } = ctx;
  const stage = loaded.config.stages.images!;
  // Candidates are made from the plan as they are dispatched and forgotten once their
  // prompt's record is written: memory follows what is in flight, not the item count.
  const plan = imagePlan(stage, loaded.prompts, loaded.config.seed, loaded.config.seed_policy);
  const { perPrompt } = plan;
  const counts = { generated: 0, withImage: 0, defective: 0, failed: 0, settledScores: 0, scored: 0, kept: 0, dropped: 0 };
  const report = () => ({
    prompts: loaded.prompts.length,
    candidates: plan.total,
    generated: counts.withImage,
    defective: counts.defective,
    failed: counts.failed,
    scored: counts.scored,
    kept: counts.kept,
    dropped: counts.dropped,
  });
  stageRun.counts = report();
  stageRun.begin(plan.total);

  const generator = pool.get(stage.generator);
  const scorer = pool.get(stage.scorer);
  // Scoring batches are fixed slices of the plan, released once generated: their make-up
  // never depends on timing, so neither do the scores.
  const toScore = new ChunkGate<{ candidate: ImageCandidate; artifact: ArtifactInfo }>(plan.total, scorer.batchSize);
  const records = new RecordsWriter(runDir.path, recordsPath("images"));
  const open = new Map<number, OpenPrompt>();
  const inFlight = new Map<string, ImageCandidate>();
  const position = (c: ImageCandidate) => c.promptIndex * perPrompt + c.imageNumber;
  const window = inFlightWindow(perPrompt, generator.batchSize, pool.replicas(stage.generator).length, scorer.batchSize, pool.replicas(stage.scorer).length);
  let dispatched = 0;
  // Replica loops waiting for the window to move (a prompt written, or the stage aborted).
  const windowMoved = new Waiters();
  const wake = () => windowMoved.wakeAll();

  // The first failing task aborts the other; so does the run's own signal.
  const abort = new AbortController();
  const calls = AbortSignal.any([signal, abort.signal]);

  /** The best of a settled prompt placed in images/ and announced, and its record written. */
  const finish = (p: OpenPrompt) => {
    const { record } = p;
    open.delete(record.index);
    const [sel] = selectBest(p.outcomes.filter((o): o is CandidateOutcome => o !== undefined), stage.min_score);
    record.candidates = record.candidates.filter((c) => c !== undefined);
    if (sel?.kept) {
      const artifact = p.artifacts[p.outcomes.findIndex((o) => o?.id === sel.kept)]!;
      const dest = runDir.imagePath(record.id);
      runDir.placeArtifact(store.pathOf(artifact.sha256), dest);
      record.kept = { id: sel.kept, score: sel.score, path: runDir.rel(dest), sha256: artifact.sha256 };
      counts.kept++;
      bus.emit({ type: "image.selected", promptId: record.id, kept: sel.kept, score: sel.score, path: record.kept.path, sha256: artifact.sha256 });
    } else {
      // A prompt none of whose candidates came back has no selection: it kept no valid image.
      const reason = sel?.kept === null ? sel.reason : "no_valid_image";
      record.dropped_reason = reason;
      counts.dropped++;
      bus.emit({ type: "image.selected", promptId: record.id, kept: null, reason, score: sel?.kept === null ? sel.bestScore : undefined });
    }
    records.put(record.index, record);
    stageRun.counts = report();
    wake();
  };
  const settle = (c: ImageCandidate) => {
    inFlight.delete(c.id);
    const p = open.get(c.promptIndex)!;
    if (--p.pending === 0) finish(p);
  };

  // Batches are formed from the plan order only, so which replica runs one never changes it.
  const source: BatchSource<ImageCandidate[]> = {
    async next() {
      while (dispatched < plan.total && dispatched - records.written * perPrompt >= window) {
        if (calls.aborted) return null;
        await windowMoved.wait();
      }
      if (dispatched >= plan.total) return null;
      const chunk: ImageCandidate[] = [];
      for (const c of plan.from(dispatched)) {
        if (chunk.length === generator.batchSize) break;
        if (c.imageNumber === 0) {
          const record: PromptRecord = { id: c.promptId, index: c.promptIndex, category: c.category, t2i_prompt: c.prompt, instruction: c.instruction, candidates: [], kept: null };
          open.set(c.promptIndex, { record, outcomes: [], artifacts: [], pending: perPrompt });
        }
        inFlight.set(c.id, c);
        chunk.push(c);
      }
      dispatched += chunk.length;
      return chunk;
    },
  };
  calls.addEventListener("abort", wake);

  /** A generated image: computed now or reused from the journal. */
  const onGenerated = (img: GenerateOutcome, worker: string, cached: boolean) => {
    const candidate = inFlight.get(img.id);
    const p = candidate && open.get(candidate.promptIndex);
    if (!candidate || !p || p.outcomes[candidate.imageNumber]) return;
    const outcome: CandidateOutcome = { id: img.id, promptId: candidate.promptId, imageNumber: candidate.imageNumber, defects: img.defects };
    p.outcomes[candidate.imageNumber] = outcome;
    p.record.candidates[candidate.imageNumber] = {
      id: candidate.id,
      guidance_scale: candidate.guidanceScale,
      image_number: candidate.imageNumber,
      seed: candidate.seed,
      sha256: img.artifact?.sha256,
      bytes: img.artifact?.bytes,
      uri: img.artifact?.uri,
      defects: img.defects,
      error: img.error,
      generated_by: worker,
    };
    counts.generated++;
    const c = cached ? { cached: true } : {};
    if (img.error) {
      outcome.error = img.error.message;
      counts.failed++;
      bus.emit({ type: "image.generated", candidate, worker, defects: img.defects, error: img.error, ...c });
      toScore.resolveAt(position(candidate), null);
      settle(candidate);
    } else {
      const artifact = img.artifact!;
      p.artifacts[candidate.imageNumber] = artifact;
      counts.withImage++;
      bus.emit({ type: "image.generated", candidate, worker, artifact, defects: img.defects, seconds: img.seconds, ...c });
      if (img.defects.length > 0) {
        counts.defective++;
        toScore.resolveAt(position(candidate), null);
        settle(candidate);
      } else {
        toScore.resolveAt(position(candidate), { candidate, artifact });
      }
    }
    stageRun.progress("generate", counts.generated, plan.total);
  };
  const onScored = (s: ScoreOutcome, worker: string, cached: boolean) => {
    const candidate = inFlight.get(s.id);
    const p = candidate && open.get(candidate.promptIndex);
    const outcome = p?.outcomes[candidate!.imageNumber];
    if (!candidate || !p || !outcome || outcome.score !== undefined || outcome.error !== undefined) return;
    counts.settledScores++;
    const rec = p.record.candidates[candidate.imageNumber]!;
    rec.scored_by = worker;
    const c = cached ? { cached: true } : {};
    if (s.error) {
      outcome.error = s.error.message;
      rec.error = s.error;
      counts.failed++;
      bus.emit({ type: "image.scored", id: s.id, worker, error: s.error, ...c });
    } else {
      outcome.score = s.score;
      rec.score = s.score;
      rec.score_components = s.components;
      counts.scored++;
      bus.emit({ type: "image.scored", id: s.id, worker, score: s.score, components: s.components, ...c });
    }
    stageRun.progress("score", counts.settledScores, plan.total);
    settle(candidate);
  };

  const generate = () =>
    runCachedBatches<ImageCandidate[], GenerateOutcome>(
      ctx,
      {
        stage: "images",
        op: OPS.generate,
        worker: stage.generator,
        source,
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
        missing: (id) => ({ id, defects: [], error: noResult(stage.generator) }),
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
        missing: (id) => ({ id, error: noResult(stage.scorer) }),
        onResult: (s, { replica, cached }) => onScored(s, replica.name, cached),
      },
      calls,
    );

  let ref: RecordsRef;
  try {
    await allOrAbort([generate(), score()], abort);
    // Candidates a model never answered for (it returned fewer than asked) settle unscored.
    for (const p of [...open.values()].sort((a, b) => a.record.index - b.record.index)) finish(p);
  } finally {
    // A failed stage still names what it finished (prompts written in order before it failed).
    ref = records.close();
    bus.emit({ type: "image.records", records: ref });
  }
  stageRun.counts = report();
  resultsOfRecords(runDir.path, ref, ctx.results);
  if (counts.kept === 0) bus.emit({ type: "warning", message: "no prompt kept an image (see the manifest's dropped reasons)" });
}

function section() {
  let records: RecordsRef | undefined;
  return {
    listen(e: RunEvent) {
      if (e.type === "image.records") records = e.records;
    },
    build() {
      if (!records) return { section: {} as { records: RecordsRef } };
      return {
        section: { records },
        outputs: { kept_images: { records: records.path, sha256: records.sha256 } },
        artifacts: [{ path: records.path, sha256: records.sha256, bytes: records.bytes, stage: "images", item: "records" }],
      };
    },
  };
}

export const imagesStage: Stage<"images"> = {
  name: "images",
  events: ["image.generated", "image.scored", "image.selected", "image.records"],
  recordEvents: ["image.generated", "image.scored", "image.selected"],
  cached: true,
  workers: (config) => referencedWorkers(config, "images"),
  plan({ loaded, forecast }) {
    const s = loaded.config.stages.images!;
    const candidates = imagePlan(s, loaded.prompts, loaded.config.seed, loaded.config.seed_policy).total;
    const f = forecast.images;
    return { prompts: loaded.prompts.length, candidates, model_items: f?.items ?? 0, cache_hits: f?.hits ?? 0, to_compute: f?.toCompute ?? 0 };
  },
  run,
  restore(events, results, runDir) {
    const written = events.findLast((e) => e.type === "image.records");
    if (written?.type === "image.records") resultsOfRecords(runDir, written.records, results);
  },
  section,
  // Outputs first (image bytes), then the scores of them: a changed output is the cause,
  // changed scores of its batch-mates only follow from it.
  compare(before, after, tol, inputs) {
    const stage = "images";
    const records = recordsToCompare<PromptRecord>(stage, "image", before.stages.images?.records, after.stages.images?.records, inputs.runDirs);
    if ("difference" in records) return records.difference;
    if ("same" in records) return null;
    const { pairs } = records;
    for (const [p, q] of pairs()) {
      if (!q) return { stage, item: p.id, what: "missing from the replay" };
      const byId = new Map(q.candidates.map((c) => [c.id, c]));
      for (const c of p.candidates) {
        const r = byId.get(c.id);
        if (!r) return { stage, item: c.id, what: "missing from the replay" };
        if (c.sha256 !== r.sha256) {
          const d = imageDiff(c.sha256, r.sha256, tol, inputs.images);
          if (d) return { stage, item: c.id, what: d };
        }
      }
    }
    for (const [p, q] of pairs()) {
      const byId = new Map(q!.candidates.map((c) => [c.id, c]));
      for (const c of p.candidates) {
        const s = scoreDiff(c.score, byId.get(c.id)!.score, tol.score);
        if (s) return { stage, item: c.id, what: s };
      }
    }
    for (const [p, q] of pairs()) if (p.kept?.id !== q!.kept?.id) return { stage, item: p.id, what: `kept ${String(p.kept?.id)} vs ${String(q!.kept?.id)}` };
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
