// The response stage: kept images x responders (concurrently, each its own worker) ->
// candidate answers -> every response scorer -> weighted score -> pair policy -> the
// dataset files (pairs.jsonl, llava.json, README.md).
import { ResponseScorerServiceClient } from "../../gen/pdsdpo/v1/response_scorer.js";
import { ResponderServiceClient } from "../../gen/pdsdpo/v1/responder.js";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { responseScorers, type PairPolicy } from "../../config/schema.js";
import type { ErrorInfo, RunEvent } from "../../events/types.js";
import type { WorkerInfo } from "../../gen/pdsdpo/v1/common.js";
import { scoreDiff, short, textDiff, tolerant } from "../../manifest/diff.js";
import type { ArtifactRecord } from "../../manifest/types.js";
import { decodingRequest, OPS, respondInput, respondItem, respondKeys, responseScoreKeys, type SampleOutcome } from "../../plan/item-keys.js";
import { pickPairs } from "../../plan/pairs.js";
import { sha256 } from "../../store/cas.js";
import { recordsPath, recordsToCompare, RecordsWriter, type RecordsRef } from "../../store/records.js";
import { datasetCard, llavaEntry, pairsJsonLine, questionOf, type AnswerRecord, type PairRecord } from "../../store/dataset-format.js";
import { ChunkGate, chunks } from "../../util/async-queue.js";
import { runCachedBatches } from "../batch-runner.js";
import { errorInfo, isTransient, scoreOutcome, sortedKeys, type ScoreOutcome } from "../item-cache.js";
import { referencedWorkers, type Stage, type StageContext, type StageRun } from "../stage.js";
import { allOrAbort, blobRef } from "../stage-util.js";
import { listSource, type RunningWorker } from "../worker-pool.js";
import type { KeptImage } from "./images.js";

type DatasetFile = { path: string; sha256: string; bytes: number };

type SelectedPair = { id: string; chosen: string; rejected: string; margin: number };

/** One kept image in the stage's records: its answers in responder and sample order, and its pairs. */
export interface ImageAnswers {
  prompt_id: string;
  answers: AnswerSummary[];
  pairs: SelectedPair[];
  dropped_pair?: string;
}

function answerSummary(a: AnswerRecord): AnswerSummary {
  return {
    id: a.id,
    prompt_id: a.promptId,
    responder: a.responder,
    sample_index: a.sampleIndex,
    finish_reason: a.finishReason,
    num_tokens: a.numTokens,
    words: a.text.trim() ? a.text.trim().split(/\s+/).length : 0,
    text_sha256: sha256(a.text),
    ...(a.error ? { error: a.error } : {}),
    // In scorer-name order, not the order the scorers happened to finish in.
    scores: sortedKeys(a.scores),
  };
}

type ResponseEvent =
  | { type: "response.generated"; answer: AnswerRecord; worker: string; cached?: boolean }
  | { type: "response.scored"; id: string; worker: string; score?: number; components?: Record<string, number>; error?: ErrorInfo; cached?: boolean }
  | {
      type: "pairs.selected";
      promptId: string;
      pairs: SelectedPair[];
      droppedCandidates: { id: string; reason: string }[];
      droppedPair?: string;
    }
  | { type: "dataset.written"; files: DatasetFile[]; pairs: number }
  /** The stage's per-image records are written (records/responses.jsonl, kept-image order), with the counts of what was dropped. */
  | { type: "responses.records"; records: RecordsRef; droppedCandidates: Record<string, number>; droppedImages: Record<string, number> };

/** An answer as the records keep it: texts live in dataset/pairs.jsonl, the records have their hashes. */
export interface AnswerSummary {
  id: string;
  prompt_id: string;
  responder: string;
  sample_index: number;
  finish_reason: string;
  num_tokens: number;
  words: number;
  text_sha256: string;
  error?: string;
  scores: Record<string, number>;
}

declare module "../../events/types.js" {
  interface StageEvents {
    responses: ResponseEvent;
  }
}
declare module "../../manifest/types.js" {
  interface StageSections {
    responses: {
      dropped_candidates: Record<string, number>;
      dropped_images: Record<string, number>;
      /** Every kept image's answers (with their scores) and pairs: in records/responses.jsonl, an image a line. */
      records?: RecordsRef;
    };
  }
  interface ManifestOutputs {
    dataset: { pairs: number; files: DatasetFile[]; sha256: string | undefined };
  }
}
declare module "../stage.js" {
  interface StageResults {
    /** dataset/pairs.jsonl of the response stage. */
    dataset?: { path: string; sha256: string; pairs: number };
  }
}

const modelOf = (info: WorkerInfo) => ({ id: info.model?.spec?.id || info.model?.spec?.path || "", revision: info.model?.resolvedRevision ?? "" });

async function run(ctx: StageContext, stageRun: StageRun): Promise<void> {
  const { bus } = ctx;
  const kept = ctx.results.images?.() ?? [];
  const { answers, answered, total } = await answerAndScore(ctx, stageRun, kept);
  const { records, policy, droppedCandidates, droppedImages } = selectPairs(ctx, kept, answers);
  const files = writeDataset(ctx, records, policy, { droppedCandidates, droppedImages, answered, total, kept: kept.length });
  bus.emit({ type: "dataset.written", files, pairs: records.length });
  ctx.results.dataset = { path: files[0]!.path, sha256: files[0]!.sha256, pairs: records.length };
  stageRun.counts = {
    images: kept.length,
    candidates: total,
    answered,
    failed: [...answers.values()].filter((a) => a.error).length,
    scored: [...answers.values()].filter((a) => a.score !== undefined).length,
    pairs: records.length,
    images_without_pair: Object.values(droppedImages).reduce((a, b) => a + b, 0),
  };
  if (records.length === 0) bus.emit({ type: "warning", message: "no preference pair was made (see the manifest's dropped reasons)" });
}

/** Every responder answers every kept image while every scorer scores the answers as they come; each answer gets its weighted score. */
async function answerAndScore(ctx: StageContext, stageRun: StageRun, kept: KeptImage[]) {
  const { loaded, bus, pool, signal } = ctx;
  const stage = loaded.config.stages.responses!;
  const byPrompt = new Map(kept.map((k) => [k.promptId, k]));
  const responders = stage.responders.map((n) => pool.get(n));
  const scorers = responseScorers(stage).map((s) => ({ weight: s.weight, worker: pool.get(s.worker) }));
  const samples = stage.decoding.num_samples;
  const total = kept.length * responders.length * samples;
  const counts = (stageRun.counts = { candidates: total, answered: 0 });
  stageRun.begin(total);

  const decoding = decodingRequest(stage.decoding);
  const answers = new Map<string, AnswerRecord>();
  // Scoring batches are fixed slices of (image, responder, sample) order: never shaped by timing.
  const answerIds = kept.flatMap((k) => responders.flatMap((w) => Array.from({ length: samples }, (_, i) => `${k.promptId}.${w.name}.s${i}`)));
  const gates = scorers.map((s) => new ChunkGate<AnswerRecord>(answerIds, s.worker.batchSize));
  // The first failing task aborts the others; so does the run's own signal.
  const abort = new AbortController();
  const calls = AbortSignal.any([signal, abort.signal]);

  /** One answer, computed now or reused from the journal (`cached`). */
  const onAnswer = (w: RunningWorker, image: KeptImage, r: SampleOutcome, cached: boolean) => {
    const id = `${image.promptId}.${w.name}.s${r.sampleIndex}`;
    if (answers.has(id)) return;
    const answer: AnswerRecord = {
      id,
      promptId: image.promptId,
      responder: w.name,
      model: modelOf(w.info),
      sampleIndex: r.sampleIndex,
      decoding: stage.decoding,
      text: r.text,
      numTokens: r.numTokens,
      finishReason: r.finishReason,
      ...(r.error ? { error: `${r.error.code}: ${r.error.message}` } : {}),
      scores: {},
    };
    answers.set(id, answer);
    counts.answered++;
    bus.emit({ type: "response.generated", answer, worker: w.name, ...(cached ? { cached } : {}) });
    stageRun.progress("respond", counts.answered, total);
    // Failed answers are never scored: they cannot become a pair; nor can empty ones unless the policy keeps them.
    for (const g of gates) g.resolve(id, !answer.error && (answer.text.trim() || stage.pairs.keep_empty) ? answer : null);
  };

  // One RPC item is one kept image; its samples are journaled together once all are in.
  const respond = (w: RunningWorker) =>
    runCachedBatches<KeptImage[], SampleOutcome[]>(
      ctx,
      {
        stage: "responses",
        op: OPS.respond,
        worker: w.name,
        source: listSource(chunks(kept, w.batchSize)),
        deadlineItems: (c) => c.length * samples,
        items: (chunk, replica) => respondKeys(replica.fingerprint, loaded.config.seed, w.name, decoding, chunk.map(respondInput)),
        rpc: "Respond",
        async *call(replica, chunk, options) {
          const items = chunk.map((k) => ({ ...respondItem(loaded.config.seed, w.name, respondInput(k)), image: blobRef(k.artifact), decoding }));
          const pending = new Map(items.map((it) => [it.id, [] as SampleOutcome[]]));
          for await (const msg of replica.client.stream(ResponderServiceClient, "Respond", (c, deadline) => c.respond({ items, maxBatchSize: chunk.length }, { deadline }), options)) {
            if (msg.event?.$case !== "response") continue;
            const r = msg.event.value;
            const got = pending.get(r.id);
            if (!got) continue;
            got.push({ sampleIndex: r.sampleIndex, text: r.text, numTokens: r.numTokens, finishReason: r.finishReason, ...(r.error ? { error: errorInfo(r.error) } : {}) });
            if (got.length < samples) continue;
            pending.delete(r.id);
            yield { id: r.id, result: got.sort((a, b) => a.sampleIndex - b.sampleIndex), transient: got.some((x) => isTransient(x.error)) };
          }
        },
        onResult: (samplesOf, { batch, index, cached }) => {
          const image = batch[index];
          if (image) for (const r of samplesOf) onAnswer(w, image, r, cached);
        },
      },
      calls,
    );

  const score = (s: (typeof scorers)[number], gate: ChunkGate<AnswerRecord>) => {
    const done = new Set<string>();
    const onScore = (r: ScoreOutcome, cached: boolean) => {
      const answer = answers.get(r.id);
      if (!answer || done.has(r.id)) return;
      done.add(r.id);
      const c = cached ? { cached: true } : {};
      if (r.error) {
        answer.error ??= `${s.worker.name}: ${r.error.code}: ${r.error.message}`;
        bus.emit({ type: "response.scored", id: r.id, worker: s.worker.name, error: r.error, ...c });
      } else {
        answer.scores[s.worker.name] = r.score!;
        bus.emit({ type: "response.scored", id: r.id, worker: s.worker.name, score: r.score, components: r.components, ...c });
      }
      stageRun.progress(`score:${s.worker.name}`, done.size, total);
    };
    const requestItems = (batch: AnswerRecord[]) =>
      batch.map((a) => ({ id: a.id, question: questionOf(byPrompt.get(a.promptId)!.instruction), answer: a.text, image: blobRef(byPrompt.get(a.promptId)!.artifact) }));
    return runCachedBatches<AnswerRecord[], ScoreOutcome>(
      ctx,
      {
        stage: "responses",
        op: OPS.responseScore,
        worker: s.worker.name,
        source: gate.source(),
        items: (batch, replica) =>
          responseScoreKeys(
            replica.fingerprint,
            s.worker.name,
            requestItems(batch).map((it, i) => ({ answerId: it.id, question: it.question, answer: it.answer, imageSha256: byPrompt.get(batch[i]!.promptId)!.artifact.sha256 })),
          ),
        // Results arrive under the answer id; each scorer journals its own item of it.
        resultIds: (batch) => batch.map((a) => a.id),
        rpc: "Score",
        async *call(replica, batch, options) {
          for await (const msg of replica.client.stream(ResponseScorerServiceClient, "Score", (c, deadline) => c.score({ items: requestItems(batch), maxBatchSize: batch.length, scoreEmptyAnswers: stage.pairs.keep_empty }, { deadline }), options)) {
            if (msg.event?.$case !== "score") continue;
            const r = scoreOutcome(msg.event.value);
            yield { id: r.id, result: r, transient: isTransient(r.error) };
          }
        },
        onResult: (r, { cached }) => onScore(r, cached),
      },
      calls,
    );
  };

  const responding = Promise.all(responders.map(respond)).finally(() => gates.forEach((g) => g.finish()));
  await allOrAbort([responding.then(() => undefined), ...scorers.map((s, i) => score(s, gates[i]!))], abort);

  for (const a of answers.values()) {
    if (scorers.every((s) => s.worker.name in a.scores)) a.score = scorers.reduce((sum, s) => sum + s.weight * a.scores[s.worker.name]!, 0);
  }
  return { answers, answered: counts.answered, total };
}

/** The pair policy over each kept image's scored answers, announced per image; each image's record written in kept order. */
function selectPairs(ctx: StageContext, kept: KeptImage[], answers: Map<string, AnswerRecord>) {
  const stage = ctx.loaded.config.stages.responses!;
  const policy: PairPolicy = stage.pairs;
  const records: PairRecord[] = [];
  const droppedCandidates: Record<string, number> = {};
  const droppedImages: Record<string, number> = {};
  const order = new Map(stage.responders.map((n, i) => [n, i]));
  const byPrompt = new Map<string, AnswerRecord[]>();
  for (const a of answers.values()) {
    const list = byPrompt.get(a.promptId);
    if (list) list.push(a);
    else byPrompt.set(a.promptId, [a]);
  }
  const writer = new RecordsWriter(ctx.runDir.path, recordsPath("responses"));
  kept.forEach((image, index) => {
    const candidates = (byPrompt.get(image.promptId) ?? []).sort((a, b) => order.get(a.responder)! - order.get(b.responder)! || a.sampleIndex - b.sampleIndex);
    const out = pickPairs(candidates, policy);
    for (const d of out.droppedCandidates) droppedCandidates[d.reason] = (droppedCandidates[d.reason] ?? 0) + 1;
    const dropped = out.droppedPair && out.pairs.length === 0 ? { dropped_pair: out.droppedPair } : {};
    if (dropped.dropped_pair) droppedImages[dropped.dropped_pair] = (droppedImages[dropped.dropped_pair] ?? 0) + 1;
    const ids = out.pairs.map((_, i) => (policy.pairs_per_image === 1 ? image.promptId : `${image.promptId}.p${i}`));
    out.pairs.forEach((pair, i) => records.push({ id: ids[i]!, image, pair: pair as PairRecord["pair"], candidates }));
    const pairs = out.pairs.map((p, i) => ({ id: ids[i]!, chosen: p.chosen.id, rejected: p.rejected.id, margin: p.margin }));
    ctx.bus.emit({ type: "pairs.selected", promptId: image.promptId, pairs, droppedCandidates: out.droppedCandidates, droppedPair: out.droppedPair });
    writer.put(index, { prompt_id: image.promptId, answers: candidates.map(answerSummary), pairs, ...dropped } satisfies ImageAnswers);
  });
  ctx.bus.emit({ type: "responses.records", records: writer.close(), droppedCandidates, droppedImages });
  return { records, policy, droppedCandidates, droppedImages };
}

function writeDataset(
  ctx: StageContext,
  records: PairRecord[],
  policy: PairPolicy,
  stats: { droppedCandidates: Record<string, number>; droppedImages: Record<string, number>; answered: number; total: number; kept: number },
): DatasetFile[] {
  const { runDir, loaded, pool } = ctx;
  const dir = join(runDir.path, "dataset");
  mkdirSync(dir, { recursive: true });
  const written = (name: string, content: string) => {
    const path = join(dir, name);
    runDir.writeAtomic(path, content);
    const data = readFileSync(path);
    return { path: runDir.rel(path), sha256: sha256(data), bytes: data.length };
  };
  const files = [
    written("pairs.jsonl", records.map((r) => `${pairsJsonLine(r, policy)}\n`).join("")),
    written("llava.json", `${JSON.stringify(records.map(llavaEntry), null, 2)}\n`),
  ];
  const stage = loaded.config.stages.responses!;
  const roles = [
    ...stage.responders.map((w) => [w, "responder"] as const),
    ...responseScorers(stage).map((s) => [s.worker, `response scorer (weight ${s.weight})`] as const),
    [loaded.config.stages.images!.generator, "image generator"] as const,
    [loaded.config.stages.images!.scorer, "image scorer"] as const,
  ];
  const card = datasetCard({
    name: loaded.config.name,
    runId: runDir.runId,
    counts: { kept_images: stats.kept, candidates: stats.total, answered: stats.answered, pairs: records.length },
    droppedCandidates: stats.droppedCandidates,
    droppedImages: stats.droppedImages,
    policy,
    models: roles.map(([worker, role]) => {
      // Workers of a stage finished in an earlier attempt are not running: their Describe is remembered.
      const info = pool.infoOf(worker);
      return { worker, role, ...modelOf(info), weightsSha256: info.model?.weightsSha256 ?? "" };
    }),
    files,
  });
  files.push(written("README.md", card));
  return files;
}

function section() {
  let droppedCandidates: Record<string, number> = {};
  let droppedImages: Record<string, number> = {};
  let records: RecordsRef | undefined;
  let dataset: { files: DatasetFile[]; pairs: number } | undefined;
  return {
    listen(e: RunEvent) {
      if (e.type === "responses.records") {
        ({ records, droppedCandidates, droppedImages } = e);
      } else if (e.type === "dataset.written") {
        dataset = { files: e.files, pairs: e.pairs };
      }
    },
    build() {
      const artifacts: ArtifactRecord[] = (dataset?.files ?? []).map((f) => ({ path: f.path, sha256: f.sha256, bytes: f.bytes, stage: "responses", item: "dataset" }));
      if (records) artifacts.push({ path: records.path, sha256: records.sha256, bytes: records.bytes, stage: "responses", item: "records" });
      return {
        section: { dropped_candidates: droppedCandidates, dropped_images: droppedImages, ...(records ? { records } : {}) },
        ...(dataset ? { outputs: { dataset: { pairs: dataset.pairs, files: dataset.files, sha256: dataset.files.find((f) => f.path.endsWith("pairs.jsonl"))?.sha256 } } } : {}),
        artifacts,
      };
    },
  };
}

export const responsesStage: Stage<"responses"> = {
  name: "responses",
  events: ["response.generated", "response.scored", "pairs.selected", "dataset.written", "responses.records"],
  recordEvents: ["response.generated", "response.scored", "pairs.selected"],
  cached: true,
  workers: (config) => referencedWorkers(config, "responses"),
  plan({ loaded, forecast }) {
    const s = loaded.config.stages.responses!;
    const prompts = loaded.prompts.length;
    const answers = prompts * s.responders.length * s.decoding.num_samples;
    const f = forecast.responses;
    return {
      max_kept_images: prompts,
      max_answers: answers,
      max_scores: answers * responseScorers(s).length,
      max_pairs: prompts * s.pairs.pairs_per_image,
      model_items: f?.items ?? 0,
      cache_hits: f?.hits ?? 0,
      to_compute: f?.toCompute ?? 0,
    };
  },
  run,
  restore(events, results) {
    for (const e of events) {
      if (e.type !== "dataset.written") continue;
      const f = e.files.find((x) => x.path.endsWith("pairs.jsonl"))!;
      results.dataset = { path: f.path, sha256: f.sha256, pairs: e.pairs };
    }
  },
  section,
  compare(before, after, tol, inputs) {
    const stage = "responses";
    // Byte-equal records hold equal answers and scores; else they are read, an image at a time, in kept order.
    const records = recordsToCompare<ImageAnswers>(stage, "answer", before.stages.responses?.records, after.stages.responses?.records, inputs.runDirs);
    if ("difference" in records) return records.difference;
    if ("pairs" in records) {
      const { pairs } = records;
      for (const [p, q] of pairs()) {
        const byId = new Map((q?.answers ?? []).map((x) => [x.id, x]));
        for (const x of p.answers) {
          const r = byId.get(x.id);
          if (!r) return { stage, item: x.id, what: "missing from the replay" };
          if (x.text_sha256 !== r.text_sha256) {
            const tb = inputs.texts?.before.get(x.id);
            const ta = inputs.texts?.after.get(x.id);
            return { stage, item: x.id, what: tb !== undefined && ta !== undefined ? textDiff(tb, ta) : `text sha256 ${short(x.text_sha256)} vs ${short(r.text_sha256)}` };
          }
        }
      }
      for (const [p, q] of pairs()) {
        const byId = new Map(q!.answers.map((x) => [x.id, x]));
        for (const x of p.answers) {
          for (const [k, v] of Object.entries(x.scores)) {
            const s = scoreDiff(v, byId.get(x.id)!.scores[k], tol.score);
            if (s) return { stage, item: `${x.id} (${k})`, what: s };
          }
        }
      }
    }
    // Under a tolerance the dataset differs whenever an input did within it (it names image hashes): its items were compared above.
    const db = before.outputs.dataset?.sha256;
    const da = after.outputs.dataset?.sha256;
    if (!tolerant(tol) && db !== da) return { stage, item: "dataset/pairs.jsonl", what: `sha256 ${short(db)} vs ${short(da)}` };
    return null;
  },
};
