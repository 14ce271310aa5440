// The image stage: prompts x guidance scales x images per scale -> generate -> score ->
// keep the best per prompt. Generation and scoring run concurrently (different workers);
// each result is verified in the store and announced as it arrives.
import { StageFailedError } from "../errors.js";
import { OutputMode, type Blob } from "../gen/pdsdpo/v1/common.js";
import { ImageDefect, imageDefectToJSON, type GeneratedImage } from "../gen/pdsdpo/v1/image_generator.js";
import { planImages, type ImageCandidate } from "../plan/image-plan.js";
import { selectBest, type CandidateOutcome } from "../plan/select.js";
import type { ArtifactInfo, ContentStore } from "../store/cas.js";
import { ChunkGate, chunks } from "../util/async-queue.js";
import { listSource } from "./worker-pool.js";
import { DETERMINISTIC_ERRORS } from "../plan/cache-keys.js";
import { DEFAULT_BATCH, generateKeys, generateParams, imageScoreKeys, OPS } from "../plan/item-keys.js";
import type { ErrorInfo } from "../events/types.js";
import { scoreOutcome, type CachedItem, type ScoreOutcome } from "./item-cache.js";
import { allOrAbort, blobRef, guarded } from "./stage-util.js";
import type { KeptImage, StageContext } from "./stage-context.js";

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
  if (img.error) return { id: img.id, defects, error: { code: img.error.code, message: img.error.message } };
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

export async function runImageStage(ctx: StageContext): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal, cache } = ctx;
  const stage = loaded.config.stages.images;
  const candidates = planImages(stage, loaded.prompts, loaded.config.seed, loaded.config.seed_policy);
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const outcomes = new Map<string, CandidateOutcome>();
  const artifacts = new Map<string, ArtifactInfo>();
  const t0 = performance.now();
  bus.emit({ type: "stage.started", stage: "images", total: candidates.length });

  const generator = pool.get(stage.generator);
  const scorer = pool.get(stage.scorer);
  // Scoring batches are fixed slices of the plan, released once generated: their make-up
  // never depends on timing, so neither do the scores.
  const toScore = new ChunkGate<{ candidate: ImageCandidate; artifact: ArtifactInfo }>(candidates.map((c) => c.id), scorer.batchSize ?? DEFAULT_BATCH.imageScore);
  // The first failing task aborts the other; so does the run's own signal.
  const abort = new AbortController();
  const calls = AbortSignal.any([signal, abort.signal]);

  let scored = 0;
  // Batches are formed from the plan order only, so which replica runs one never changes it.
  const generate = async () => {
    try {
      await pool.runBatches(
        stage.generator,
        listSource(chunks(candidates, generator.batchSize ?? DEFAULT_BATCH.generate)),
        (c) => c.length,
        async (replica, chunk) => {
          const itemOf = cache.batch<GenerateOutcome>("images", OPS.generate, generateKeys(generator.fingerprint, chunk), (r) => onGenerated(r, replica.name, "journal"));
          if (!itemOf) return;
          const req = {
            items: chunk.map((c) => ({ id: c.id, ...generateParams(c) })),
            output: OutputMode.OUTPUT_MODE_STORE,
            maxBatchSize: chunk.length,
          };
          const stream = replica.client.generate(req, { deadlineMs: pool.deadlineMs(replica, chunk.length), signal: calls });
          for await (const msg of guarded(pool, replica, "Generate", stream)) {
            if (msg.event?.$case === "image") onGenerated(generateOutcome(store, msg.event.value), replica.name, itemOf(msg.event.value.id));
          }
        },
        calls,
      );
    } finally {
      toScore.finish();
    }
  };
  /** A generated image: computed now (journaled under `from`), or reused from the journal. */
  const onGenerated = (img: GenerateOutcome, worker: string, from: CachedItem | "journal") => {
    const candidate = byId.get(img.id);
    if (!candidate || outcomes.has(img.id)) return;
    const outcome: CandidateOutcome = { id: img.id, promptId: candidate.promptId, imageNumber: candidate.imageNumber, defects: img.defects };
    outcomes.set(img.id, outcome);
    const cached = from === "journal" ? { cached: true } : {};
    if (img.error) {
      outcome.error = img.error.message;
      bus.emit({ type: "image.generated", candidate, worker, defects: img.defects, error: img.error, ...cached });
      toScore.resolve(img.id, null);
    } else {
      const artifact = img.artifact!;
      artifacts.set(img.id, artifact);
      bus.emit({ type: "image.generated", candidate, worker, artifact, defects: img.defects, seconds: img.seconds, ...cached });
      toScore.resolve(img.id, img.defects.length === 0 ? { candidate, artifact } : null);
    }
    if (from !== "journal" && (!img.error || DETERMINISTIC_ERRORS.has(img.error.code))) cache.computed("images", OPS.generate, from, img, img.artifact ? [img.artifact.sha256] : []);
    bus.emit({ type: "stage.progress", stage: "images", step: "generate", done: outcomes.size, total: candidates.length });
  };

  const score = () =>
    pool.runBatches(
      stage.scorer,
      toScore.source(),
      (items) => items.length,
      async (replica, batch) => {
        const items = imageScoreKeys(scorer.fingerprint, batch.map(({ candidate, artifact }) => ({ candidate, sha256: artifact.sha256 })));
        const itemOf = cache.batch<ScoreOutcome>("images", OPS.imageScore, items, (r) => onScored(r, replica.name, "journal"));
        if (!itemOf) return;
        const req = {
          items: batch.map(({ candidate, artifact }) => ({ id: candidate.id, prompt: candidate.prompt, image: blobRef(artifact) })),
          maxBatchSize: batch.length,
        };
        const stream = replica.client.scoreImages(req, { deadlineMs: pool.deadlineMs(replica, batch.length), signal: calls });
        for await (const msg of guarded(pool, replica, "Score", stream)) {
          if (msg.event?.$case !== "score") continue;
          const s = msg.event.value;
          onScored(scoreOutcome(s), replica.name, itemOf(s.id));
        }
      },
      calls,
    );
  const onScored = (s: ScoreOutcome, worker: string, from: CachedItem | "journal") => {
    const outcome = outcomes.get(s.id);
    if (!outcome || outcome.score !== undefined || outcome.error !== undefined) return;
    scored++;
    const cached = from === "journal" ? { cached: true } : {};
    if (s.error) {
      outcome.error = s.error.message;
      bus.emit({ type: "image.scored", id: s.id, worker, error: s.error, ...cached });
    } else {
      outcome.score = s.score;
      bus.emit({ type: "image.scored", id: s.id, worker, score: s.score, components: s.components, ...cached });
    }
    if (from !== "journal" && (!s.error || DETERMINISTIC_ERRORS.has(s.error.code))) cache.computed("images", OPS.imageScore, from, s, []);
    bus.emit({ type: "stage.progress", stage: "images", step: "score", done: scored, total: candidates.length });
  };

  try {
    await allOrAbort([generate(), score()], abort);
  } catch (e) {
    bus.emit({ type: "stage.finished", stage: "images", status: "failed", counts: { candidates: candidates.length, generated: outcomes.size, scored }, cache: cache.countsOf("images"), seconds: (performance.now() - t0) / 1000 });
    throw e;
  }

  const selections = selectBest([...outcomes.values()], stage.min_score);
  const keptImages: KeptImage[] = [];
  for (const sel of selections) {
    if (sel.kept !== null) {
      const artifact = artifacts.get(sel.kept)!;
      const candidate = byId.get(sel.kept)!;
      const dest = runDir.imagePath(sel.promptId);
      runDir.placeArtifact(store.pathOf(artifact.sha256), dest);
      keptImages.push({
        promptId: sel.promptId,
        promptIndex: candidate.promptIndex,
        category: candidate.category,
        t2iPrompt: candidate.prompt,
        instruction: candidate.instruction,
        candidateId: sel.kept,
        guidanceScale: candidate.guidanceScale,
        score: sel.score,
        artifact,
        path: runDir.rel(dest),
      });
      bus.emit({ type: "image.selected", promptId: sel.promptId, kept: sel.kept, score: sel.score, path: runDir.rel(dest), sha256: artifact.sha256 });
    } else {
      bus.emit({ type: "image.selected", promptId: sel.promptId, kept: null, reason: sel.reason, score: sel.bestScore });
    }
  }
  const count = (pred: (o: CandidateOutcome) => boolean) => [...outcomes.values()].filter(pred).length;
  const counts = {
    prompts: loaded.prompts.length,
    candidates: candidates.length,
    generated: artifacts.size,
    defective: count((o) => o.defects.length > 0),
    failed: count((o) => o.error !== undefined),
    scored: count((o) => o.score !== undefined),
    kept: keptImages.length,
    dropped: selections.length - keptImages.length,
  };
  ctx.results.images = keptImages.sort((a, b) => a.promptIndex - b.promptIndex);
  if (keptImages.length === 0) bus.emit({ type: "warning", message: "no prompt kept an image (see the manifest's dropped reasons)" });
  bus.emit({ type: "stage.finished", stage: "images", status: "succeeded", counts, cache: cache.countsOf("images"), seconds: (performance.now() - t0) / 1000 });
}
