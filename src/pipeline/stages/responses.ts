// The response stage: kept images x responders (concurrently, each its own worker) ->
// candidate answers -> every response scorer -> weighted score -> pair policy -> the
// dataset files (pairs.jsonl, llava.json, README.md).
import { ResponseScorerServiceClient } from "../../gen/pdsdpo/v1/response_scorer.js";
import { ResponderServiceClient } from "../../gen/pdsdpo/v1/responder.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { responseScorers, type PairPolicy } from "../../config/schema.js";
import type { ErrorInfo, RunEvent } from "../../events/types.js";
import type { WorkerInfo } from "../../gen/pdsdpo/v1/common.js";
import { scoreDiff, short, textDiff, tolerant } from "../../manifest/diff.js";
import type { ArtifactRecord } from "../../manifest/types.js";
import { decodingRequest, OPS, respondInput, respondItem, respondKeys, responseScoreKeys, type SampleOutcome } from "../../plan/item-keys.js";
import { StageFailedError } from "../../errors.js";
import { pickPairs } from "../../plan/pairs.js";
import { sha256 } from "../../store/cas.js";
import { recordsPath, recordsToCompare, RecordsWriter, SequencedWriter, type RecordsRef } from "../../store/records.js";
import { datasetCard, llavaEntry, pairsJsonLine, questionOf, type AnswerRecord, type PairRecord } from "../../store/dataset-format.js";
import { ChunkGate, Waiters } from "../../util/async-queue.js";
import { noResult, runCachedBatches } from "../batch-runner.js";
import { errorInfo, isTransient, scoreOutcome, sortedKeys, type ScoreOutcome } from "../item-cache.js";
import { referencedWorkers, type Stage, type StageContext, type StageRun } from "../stage.js";
import { allOrAbort, blobRef } from "../stage-util.js";
import { PIPELINE_DEPTH, type BatchSource } from "../worker-pool.js";
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

/** One kept image being answered: its answers by slot (responder, then sample) as they come. */
interface OpenImage {
  image: KeptImage;
  index: number;
  answers: (AnswerRecord | undefined)[];
  /** Per slot: scorers still to settle the answer (score or failure). */
  left: number[];
  /** Per scorer and slot: settled already (a result is taken once). */
  settled: boolean[];
  /** Answers not yet final (answered and, if scoreable, settled by every scorer). */
  pending: number;
}

/** An answer as a scorer's batch holds it. */
interface ToScore {
  open: OpenImage;
  slot: number;
  answer: AnswerRecord;
}

/**
 * Kept images answered ahead of the last one written: bounds what the stage holds. Enough
 * that every responder keeps its replicas' pipelines full while the slowest one catches up,
 * and that a scoring slice (which spans images) can always fill.
 */
export function answerWindow(perImage: number, responderBatches: number[], scoreBatches: number[]): number {
  const answering = responderBatches.reduce((a, b) => a + b, 0);
  const scoring = Math.max(0, ...scoreBatches);
  return Math.max(1024, 4 * PIPELINE_DEPTH * answering + 2 * Math.ceil(scoring / perImage) + 2);
}

/** The stage's dataset files, written an image at a time in kept order. */
function datasetWriters(runDir: StageContext["runDir"]) {
  return {
    pairs: new SequencedWriter(runDir.path, "dataset/pairs.jsonl"),
    // JSON.stringify(entries, null, 2), an entry at a time.
    llava: new SequencedWriter(runDir.path, "dataset/llava.json", { open: "[\n", separator: ",\n", close: "\n]\n", empty: "[]\n" }),
  };
}

/** One llava.json entry as an element of the pretty-printed array (two spaces deeper). */
const llavaUnit = (rec: PairRecord) => `  ${JSON.stringify(llavaEntry(rec), null, 2).replace(/\n/g, "\n  ")}`;

/**
 * Every responder answers every kept image while every scorer scores the answers as they
 * come. An image is finished once its answers are final: weighted scores, the pair policy,
 * its record, its pairs and llava entries written, in kept order; then it is forgotten, so
 * memory follows what is in flight, not the number of kept images.
 */
async function run(ctx: StageContext, stageRun: StageRun): Promise<void> {
  const { loaded, bus, pool, signal, runDir } = ctx;
  const stage = loaded.config.stages.responses!;
  const policy: PairPolicy = stage.pairs;
  const responders = stage.responders.map((n) => pool.get(n));
  const scorers = responseScorers(stage).map((s) => ({ weight: s.weight, worker: pool.get(s.worker) }));
  const samples = stage.decoding.num_samples;
  const perImage = responders.length * samples;
  // The kept images are read from the image stage's records: counted first, then read as answered.
  let keptCount = 0;
  for (const _ of ctx.results.images?.() ?? []) keptCount++;
  const keptImages = (ctx.results.images?.() ?? [])[Symbol.iterator]();
  const total = keptCount * perImage;
  const counts = { answered: 0, failed: 0, scored: 0, pairs: 0, withoutPair: 0 };
  const report = () => ({
    images: keptCount,
    candidates: total,
    answered: counts.answered,
    failed: counts.failed,
    scored: counts.scored,
    pairs: counts.pairs,
    images_without_pair: counts.withoutPair,
  });
  stageRun.counts = report();
  stageRun.begin(total);

  const decoding = decodingRequest(stage.decoding);
  // Scoring batches are fixed slices of (image, responder, sample) order: never shaped by timing.
  const gates = scorers.map((s) => new ChunkGate<ToScore>(total, s.worker.batchSize));
  const records = new RecordsWriter(runDir.path, recordsPath("responses"));
  const dataset = datasetWriters(runDir);
  const droppedCandidates: Record<string, number> = {};
  const droppedImages: Record<string, number> = {};
  const open = new Map<number, OpenImage>();
  const window = answerWindow(
    perImage,
    responders.map((w) => w.batchSize * pool.replicas(w.name).length),
    scorers.map((s) => s.worker.batchSize * pool.replicas(s.worker.name).length),
  );
  // Images read from the records so far, each responder's next image, and the next image to write.
  let pulled = 0;
  const cursor = responders.map(() => 0);
  let written = 0;
  const windowMoved = new Waiters();
  const wake = () => windowMoved.wakeAll();

  // The first failing task aborts the others; so does the run's own signal.
  const abort = new AbortController();
  const calls = AbortSignal.any([signal, abort.signal]);
  calls.addEventListener("abort", wake);

  const openAt = (i: number): OpenImage => {
    while (pulled <= i) {
      const next = keptImages.next();
      if (next.done) throw new StageFailedError(`the image records ended after ${pulled} kept images, ${keptCount} were counted`);
      open.set(pulled, { image: next.value, index: pulled, answers: [], left: [], settled: [], pending: perImage });
      pulled++;
    }
    return open.get(i)!;
  };

  /** Every final image from the next one to write on: pairs picked, its record and dataset lines written, then forgotten. */
  const writeFinished = () => {
    for (let o = open.get(written); o && o.pending === 0; o = open.get(written)) {
      open.delete(written);
      finishImage(o);
      written++;
    }
    stageRun.counts = report();
    wake();
  };

  const finishImage = ({ image, index, answers }: OpenImage) => {
    const candidates = answers.filter((a): a is AnswerRecord => a !== undefined);
    for (const a of candidates) {
      if (a.error) counts.failed++;
      if (scorers.every((s) => s.worker.name in a.scores)) {
        a.score = scorers.reduce((sum, s) => sum + s.weight * a.scores[s.worker.name]!, 0);
        counts.scored++;
      }
    }
    const out = pickPairs(candidates, policy);
    for (const d of out.droppedCandidates) droppedCandidates[d.reason] = (droppedCandidates[d.reason] ?? 0) + 1;
    const dropped = out.droppedPair && out.pairs.length === 0 ? { dropped_pair: out.droppedPair } : {};
    if (dropped.dropped_pair) {
      droppedImages[dropped.dropped_pair] = (droppedImages[dropped.dropped_pair] ?? 0) + 1;
      counts.withoutPair++;
    }
    const ids = out.pairs.map((_, i) => (policy.pairs_per_image === 1 ? image.promptId : `${image.promptId}.p${i}`));
    const pairRecords = out.pairs.map((pair, i): PairRecord => ({ id: ids[i]!, image, pair: pair as PairRecord["pair"], candidates }));
    counts.pairs += pairRecords.length;
    const pairs = out.pairs.map((p, i) => ({ id: ids[i]!, chosen: p.chosen.id, rejected: p.rejected.id, margin: p.margin }));
    bus.emit({ type: "pairs.selected", promptId: image.promptId, pairs, droppedCandidates: out.droppedCandidates, droppedPair: out.droppedPair });
    records.put(index, { prompt_id: image.promptId, answers: candidates.map(answerSummary), pairs, ...dropped } satisfies ImageAnswers);
    dataset.pairs.putAll(index, pairRecords.map((r) => `${pairsJsonLine(r, policy)}\n`));
    dataset.llava.putAll(index, pairRecords.map(llavaUnit));
  };

  const settle = (o: OpenImage) => {
    if (--o.pending === 0 && o.index === written) writeFinished();
  };

  /** One answer, computed now or reused from the journal (`cached`). */
  const onAnswer = (ri: number, o: OpenImage, r: SampleOutcome, cached: boolean) => {
    const w = responders[ri]!;
    const slot = ri * samples + r.sampleIndex;
    if (r.sampleIndex < 0 || r.sampleIndex >= samples || o.answers[slot]) return;
    const answer: AnswerRecord = {
      id: `${o.image.promptId}.${w.name}.s${r.sampleIndex}`,
      promptId: o.image.promptId,
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
    o.answers[slot] = answer;
    counts.answered++;
    bus.emit({ type: "response.generated", answer, worker: w.name, ...(cached ? { cached } : {}) });
    stageRun.progress("respond", counts.answered, total);
    // Failed answers are never scored: they cannot become a pair; nor can empty ones unless the policy keeps them.
    const scoreable = !answer.error && (answer.text.trim() !== "" || stage.pairs.keep_empty);
    const position = o.index * perImage + slot;
    for (const g of gates) g.resolveAt(position, scoreable ? { open: o, slot, answer } : null);
    if (scoreable && scorers.length > 0) o.left[slot] = scorers.length;
    else settle(o);
  };

  // Batches of kept images in kept order, each responder at its own pace, never more than the window ahead of the last image written.
  const sourceOf = (ri: number): BatchSource<OpenImage[]> => {
    const batch = responders[ri]!.batchSize;
    return {
      async next() {
        while (cursor[ri]! < keptCount && Math.min(cursor[ri]! + batch, keptCount) > written + window) {
          if (calls.aborted) return null;
          await windowMoved.wait();
        }
        const from = cursor[ri]!;
        if (from >= keptCount) return null;
        const chunk: OpenImage[] = [];
        for (let i = from; i < Math.min(from + batch, keptCount); i++) chunk.push(openAt(i));
        cursor[ri] = from + chunk.length;
        return chunk;
      },
    };
  };

  // One RPC item is one kept image; its samples are journaled together once all are in.
  const respond = (ri: number) => {
    const w = responders[ri]!;
    return runCachedBatches<OpenImage[], SampleOutcome[]>(
      ctx,
      {
        stage: "responses",
        op: OPS.respond,
        worker: w.name,
        source: sourceOf(ri),
        deadlineItems: (c) => c.length * samples,
        items: (chunk, replica) => respondKeys(replica.fingerprint, loaded.config.seed, w.name, decoding, chunk.map((o) => respondInput(o.image))),
        rpc: "Respond",
        async *call(replica, chunk, options) {
          const items = chunk.map((o) => ({ ...respondItem(loaded.config.seed, w.name, respondInput(o.image)), image: blobRef(o.image.artifact), decoding }));
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
          // An item the responder gave fewer samples than asked: the ones it gave, the others failed (never journaled).
          for (const [id, got] of pending) if (got.length > 0) yield { id, result: withMissingSamples(got, samples, w.name), transient: true };
        },
        missing: () => withMissingSamples([], samples, w.name),
        onResult: (samplesOf, { batch, index, cached }) => {
          const o = batch[index];
          if (o) for (const r of samplesOf) onAnswer(ri, o, r, cached);
        },
      },
      calls,
    );
  };

  const score = (si: number, gate: ChunkGate<ToScore>) => {
    const s = scorers[si]!;
    let done = 0;
    const onScore = (r: ScoreOutcome, item: ToScore | undefined, cached: boolean) => {
      if (!item || item.answer.id !== r.id) return;
      const { open: o, slot, answer } = item;
      const key = si * perImage + slot;
      if (o.settled[key]) return;
      o.settled[key] = true;
      done++;
      const c = cached ? { cached: true } : {};
      if (r.error) {
        answer.error ??= `${s.worker.name}: ${r.error.code}: ${r.error.message}`;
        bus.emit({ type: "response.scored", id: r.id, worker: s.worker.name, error: r.error, ...c });
      } else {
        answer.scores[s.worker.name] = r.score!;
        bus.emit({ type: "response.scored", id: r.id, worker: s.worker.name, score: r.score, components: r.components, ...c });
      }
      stageRun.progress(`score:${s.worker.name}`, done, total);
      if (--o.left[slot]! === 0) {
        answer.scores = sortedKeys(answer.scores);
        settle(o);
      }
    };
    const requestItems = (batch: ToScore[]) =>
      batch.map(({ open: o, answer }) => ({ id: answer.id, question: questionOf(o.image.instruction), answer: answer.text, image: blobRef(o.image.artifact) }));
    return runCachedBatches<ToScore[], ScoreOutcome>(
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
            requestItems(batch).map((it, i) => ({ answerId: it.id, question: it.question, answer: it.answer, imageSha256: batch[i]!.open.image.artifact.sha256 })),
          ),
        // Results arrive under the answer id; each scorer journals its own item of it.
        resultIds: (batch) => batch.map((a) => a.answer.id),
        rpc: "Score",
        async *call(replica, batch, options) {
          for await (const msg of replica.client.stream(ResponseScorerServiceClient, "Score", (c, deadline) => c.score({ items: requestItems(batch), maxBatchSize: batch.length, scoreEmptyAnswers: stage.pairs.keep_empty }, { deadline }), options)) {
            if (msg.event?.$case !== "score") continue;
            const r = scoreOutcome(msg.event.value);
            yield { id: r.id, result: r, transient: isTransient(r.error) };
          }
        },
        missing: (id) => ({ id, error: noResult(s.worker.name) }),
        onResult: (r, { batch, index, cached }) => onScore(r, batch[index], cached),
      },
      calls,
    );
  };

  let finished = false;
  try {
    const responding = Promise.all(responders.map((_, ri) => respond(ri))).finally(() => gates.forEach((g) => g.finish()));
    await allOrAbort([responding.then(() => undefined), ...scorers.map((_, si) => score(si, gates[si]!))], abort);
    // Every call has ended: an answer still unsettled had no result from some scorer; an image still open, none from some responder.
    for (const o of [...open.values()].sort((a, b) => a.index - b.index)) o.pending = 0;
    writeFinished();
    finished = true;
  } finally {
    keptImages.return?.(); // the image records file, when the stage ended before reading it all
    // A failed stage still names what it finished (images written in kept order before it
    // failed); its dataset files are whole or absent.
    const ref = records.close();
    bus.emit({ type: "responses.records", records: ref, droppedCandidates, droppedImages });
    if (!finished) for (const w of Object.values(dataset)) w.abandon();
  }
  const file = (w: SequencedWriter) => {
    const r = w.close();
    return { path: r.path, sha256: r.sha256, bytes: r.bytes };
  };
  const files = [file(dataset.pairs), file(dataset.llava)];
  files.push(writeCard(ctx, files, policy, { droppedCandidates, droppedImages, answered: counts.answered, total, kept: keptCount, pairs: counts.pairs }));
  bus.emit({ type: "dataset.written", files, pairs: counts.pairs });
  ctx.results.dataset = { path: files[0]!.path, sha256: files[0]!.sha256, pairs: counts.pairs };
  stageRun.counts = report();
  if (counts.pairs === 0) bus.emit({ type: "warning", message: "no preference pair was made (see the manifest's dropped reasons)" });
}

/** An item's samples, those missing failed: the responder ended its call without them. */
function withMissingSamples(got: SampleOutcome[], samples: number, worker: string): SampleOutcome[] {
  const out = [...got];
  for (let i = 0; i < samples; i++) if (!got.some((g) => g.sampleIndex === i)) out.push({ sampleIndex: i, text: "", numTokens: 0, finishReason: "error", error: noResult(worker) });
  return out.sort((a, b) => a.sampleIndex - b.sampleIndex);
}

function writeCard(
  ctx: StageContext,
  files: DatasetFile[],
  policy: PairPolicy,
  stats: { droppedCandidates: Record<string, number>; droppedImages: Record<string, number>; answered: number; total: number; kept: number; pairs: number },
): DatasetFile {
  const { runDir, loaded, pool } = ctx;
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
    counts: { kept_images: stats.kept, candidates: stats.total, answered: stats.answered, pairs: stats.pairs },
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
  const path = join(runDir.path, "dataset", "README.md");
  runDir.writeAtomic(path, card);
  const data = readFileSync(path);
  return { path: runDir.rel(path), sha256: sha256(data), bytes: data.length };
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
