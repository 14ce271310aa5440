// The response stage: kept images x responders (concurrently, each its own worker) ->
// candidate answers -> every response scorer -> weighted score -> pair policy -> the
// dataset files (pairs.jsonl, llava.json, README.md).
import { join } from "node:path";
import { mkdirSync, readFileSync } from "node:fs";
import { responseScorers } from "../config/schema.js";
import { DEFAULT_PAIR_POLICY, pickPairs, type PairPolicy } from "../plan/pairs.js";
import { sha256 } from "../store/cas.js";
import { datasetCard, llavaEntry, pairsJsonLine, questionOf, type AnswerRecord, type PairRecord } from "../store/dataset-format.js";
import { ChunkGate, chunks } from "../util/async-queue.js";
import type { KeptImage, StageContext } from "./stage-context.js";
import { allOrAbort, blobRef, guarded } from "./stage-util.js";
import { listSource, type RunningWorker } from "./worker-pool.js";
import type { WorkerInfo } from "../gen/pdsdpo/v1/common.js";
import { DETERMINISTIC_ERRORS } from "../plan/cache-keys.js";
import { decodingRequest, DEFAULT_BATCH, OPS, respondInput, respondItem, respondKeys, responseScoreKeys, type SampleOutcome } from "../plan/item-keys.js";
import type { ErrorInfo } from "../events/types.js";
import { scoreOutcome, type CachedItem, type ScoreOutcome } from "./item-cache.js";



const modelOf = (info: WorkerInfo) => ({ id: info.model?.spec?.id || info.model?.spec?.path || "", revision: info.model?.resolvedRevision ?? "" });

export async function runResponseStage(ctx: StageContext): Promise<void> {
  const { loaded, bus, pool, signal, cache } = ctx;
  const stage = loaded.config.stages.responses!;
  const kept = ctx.results.images ?? [];
  const byPrompt = new Map(kept.map((k) => [k.promptId, k]));
  const responders = stage.responders.map((n) => pool.get(n));
  const scorers = responseScorers(stage).map((s) => ({ weight: s.weight, worker: pool.get(s.worker) }));
  const samples = stage.decoding.num_samples;
  const total = kept.length * responders.length * samples;
  const t0 = performance.now();
  bus.emit({ type: "stage.started", stage: "responses", total });

  const decoding = decodingRequest(stage.decoding);
  const answers = new Map<string, AnswerRecord>();
  // Scoring batches are fixed slices of (image, responder, sample) order: never shaped by timing.
  const answerIds = kept.flatMap((k) => responders.flatMap((w) => Array.from({ length: samples }, (_, i) => `${k.promptId}.${w.name}.s${i}`)));
  const gates = scorers.map((s) => new ChunkGate<AnswerRecord>(answerIds, s.worker.batchSize ?? DEFAULT_BATCH.responseScore));
  // The first failing task aborts the others; so does the run's own signal.
  const abort = new AbortController();
  const calls = AbortSignal.any([signal, abort.signal]);
  let answered = 0;

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
    answered++;
    bus.emit({ type: "response.generated", answer, worker: w.name, ...(cached ? { cached } : {}) });
    bus.emit({ type: "stage.progress", stage: "responses", step: "respond", done: answered, total });
    // Failed and empty answers are never scored: they cannot become a pair.
    for (const g of gates) g.resolve(id, !answer.error && answer.text.trim() ? answer : null);
  };

  const respond = (w: RunningWorker) =>
    pool.runBatches(
      w.name,
      listSource(chunks(kept, w.batchSize ?? DEFAULT_BATCH.respond)),
      (c) => c.length,
      async (replica, chunk) => {
        const inputs = chunk.map(respondInput);
        const items = inputs.map((k, i) => ({ ...respondItem(loaded.config.seed, w.name, k), image: blobRef(chunk[i]!.artifact), decoding }));
        const cachedItems = respondKeys(w.fingerprint, loaded.config.seed, w.name, decoding, inputs);
        const computing = cache.batch<SampleOutcome[]>("responses", OPS.respond, cachedItems, (samplesOf, i) => samplesOf.forEach((r) => onAnswer(w, chunk[i]!, r, true)));
        if (!computing) return;
        const promptOf = new Map(chunk.map((k, i) => [items[i]!.id, { image: k, item: cachedItems[i]!, samples: [] as SampleOutcome[] }]));
        const stream = replica.client.respond({ items, maxBatchSize: chunk.length }, { deadlineMs: pool.deadlineMs(replica, chunk.length * samples), signal: calls });
        for await (const msg of guarded(pool, replica, "Respond", stream)) {
          if (msg.event?.$case !== "response") continue;
          const r = msg.event.value;
          const slot = promptOf.get(r.id);
          if (!slot) continue;
          const outcome: SampleOutcome = { sampleIndex: r.sampleIndex, text: r.text, numTokens: r.numTokens, finishReason: r.finishReason, ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}) };
          onAnswer(w, slot.image, outcome, false);
          slot.samples.push(outcome);
          // An RPC item is journaled once all its samples are in, unless one failed for a passing reason.
          if (slot.samples.length === samples && slot.samples.every((x) => !x.error || DETERMINISTIC_ERRORS.has(x.error.code))) {
            cache.computed("responses", OPS.respond, slot.item, [...slot.samples].sort((a, b) => a.sampleIndex - b.sampleIndex), []);
          }
        }
      },
      calls,
    );

  const score = (s: (typeof scorers)[number], gate: ChunkGate<AnswerRecord>) => {
    const done = new Set<string>();
    const op = OPS.responseScore;
    const onScore = (r: ScoreOutcome, from: CachedItem | "journal") => {
      const answer = answers.get(r.id);
      if (!answer || done.has(r.id)) return;
      done.add(r.id);
      const cached = from === "journal" ? { cached: true } : {};
      if (r.error) {
        answer.error ??= `${s.worker.name}: ${r.error.code}: ${r.error.message}`;
        bus.emit({ type: "response.scored", id: r.id, worker: s.worker.name, error: r.error, ...cached });
      } else {
        answer.scores[s.worker.name] = r.score!;
        bus.emit({ type: "response.scored", id: r.id, worker: s.worker.name, score: r.score, components: r.components, ...cached });
      }
      if (from !== "journal" && (!r.error || DETERMINISTIC_ERRORS.has(r.error.code))) cache.computed("responses", op, from, r, []);
      bus.emit({ type: "stage.progress", stage: "responses", step: `score:${s.worker.name}`, done: done.size, total });
    };
    return pool.runBatches(
      s.worker.name,
      gate.source(),
      (b) => b.length,
      async (replica, batch) => {
        const items = batch.map((a) => ({ id: a.id, question: questionOf(byPrompt.get(a.promptId)!.instruction), answer: a.text, image: blobRef(byPrompt.get(a.promptId)!.artifact) }));
        const cachedItems = responseScoreKeys(
          s.worker.fingerprint,
          s.worker.name,
          items.map((it, i) => ({ answerId: it.id, question: it.question, answer: it.answer, imageSha256: byPrompt.get(batch[i]!.promptId)!.artifact.sha256 })),
        );
        // Results arrive under the answer id; each scorer journals its own item of it.
        const itemOf = cache.batch<ScoreOutcome>("responses", op, cachedItems, (r) => onScore(r, "journal"), items.map((it) => it.id));
        if (!itemOf) return;
        const stream = replica.client.scoreResponses({ items, maxBatchSize: batch.length }, { deadlineMs: pool.deadlineMs(replica, batch.length), signal: calls });
        for await (const msg of guarded(pool, replica, "Score", stream)) {
          if (msg.event?.$case !== "score") continue;
          const r = msg.event.value;
          onScore(scoreOutcome(r), itemOf(r.id));
        }
      },
      calls,
    );
  };

  const responding = Promise.all(responders.map(respond)).finally(() => gates.forEach((g) => g.finish()));
  try {
    await allOrAbort([responding.then(() => undefined), ...scorers.map((s, i) => score(s, gates[i]!))], abort);
  } catch (e) {
    bus.emit({ type: "stage.finished", stage: "responses", status: "failed", counts: { candidates: total, answered }, cache: cache.countsOf("responses"), seconds: (performance.now() - t0) / 1000 });
    throw e;
  }

  for (const a of answers.values()) {
    if (scorers.every((s) => s.worker.name in a.scores)) a.score = scorers.reduce((sum, s) => sum + s.weight * a.scores[s.worker.name]!, 0);
  }
  const policy: PairPolicy = { ...DEFAULT_PAIR_POLICY, ...stage.pairs };
  const records: PairRecord[] = [];
  const droppedCandidates: Record<string, number> = {};
  const droppedImages: Record<string, number> = {};
  const order = new Map(stage.responders.map((n, i) => [n, i]));
  for (const image of kept) {
    const candidates = [...answers.values()]
      .filter((a) => a.promptId === image.promptId)
      .sort((a, b) => order.get(a.responder)! - order.get(b.responder)! || a.sampleIndex - b.sampleIndex);
    const out = pickPairs(candidates, policy);
    for (const d of out.droppedCandidates) droppedCandidates[d.reason] = (droppedCandidates[d.reason] ?? 0) + 1;
    if (out.droppedPair && out.pairs.length === 0) droppedImages[out.droppedPair] = (droppedImages[out.droppedPair] ?? 0) + 1;
    const ids = out.pairs.map((_, i) => (policy.pairs_per_image === 1 ? image.promptId : `${image.promptId}.p${i}`));
    out.pairs.forEach((pair, i) => {
      records.push({ id: ids[i]!, image: imageRecord(image), pair: pair as PairRecord["pair"], candidates });
    });
    bus.emit({
      type: "pairs.selected",
      promptId: image.promptId,
      pairs: out.pairs.map((p, i) => ({ id: ids[i]!, chosen: p.chosen.id, rejected: p.rejected.id, margin: p.margin })),
      droppedCandidates: out.droppedCandidates,
      droppedPair: out.droppedPair,
    });
  }

  const files = writeDataset(ctx, records, policy, { droppedCandidates, droppedImages, answered, total, kept: kept.length });
  bus.emit({ type: "dataset.written", files, pairs: records.length });
  ctx.results.dataset = { path: files[0]!.path, sha256: files[0]!.sha256, pairs: records.length };
  const counts = {
    images: kept.length,
    candidates: total,
    answered,
    failed: [...answers.values()].filter((a) => a.error).length,
    scored: [...answers.values()].filter((a) => a.score !== undefined).length,
    pairs: records.length,
    images_without_pair: Object.values(droppedImages).reduce((a, b) => a + b, 0),
  };
  if (records.length === 0) bus.emit({ type: "warning", message: "no preference pair was made (see the manifest's dropped reasons)" });
  bus.emit({ type: "stage.finished", stage: "responses", status: "succeeded", counts, cache: cache.countsOf("responses"), seconds: (performance.now() - t0) / 1000 });
}

function imageRecord(k: KeptImage) {
  return { promptId: k.promptId, category: k.category, t2iPrompt: k.t2iPrompt, instruction: k.instruction, candidateId: k.candidateId, guidanceScale: k.guidanceScale, score: k.score, sha256: k.artifact.sha256, path: k.path };
}

function writeDataset(
  ctx: StageContext,
  records: PairRecord[],
  policy: PairPolicy,
  stats: { droppedCandidates: Record<string, number>; droppedImages: Record<string, number>; answered: number; total: number; kept: number },
) {
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
    [loaded.config.stages.images.generator, "image generator"] as const,
    [loaded.config.stages.images.scorer, "image scorer"] as const,
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
