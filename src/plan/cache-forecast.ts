// Pure: how many model-call items of a plan the journal already holds. It walks the stages
// as they would run: batches formed the same way, keys made by the same functions, and
// each journaled result feeding the next step. Where an earlier result is not journaled
// the later items cannot be keyed yet; they count as to compute, never as hits.
import type { Decoding } from "../gen/pdsdpo/v1/responder.js";
import { chunks } from "../util/async-queue.js";
import type { WorkerFingerprint } from "./cache-keys.js";
import type { ImageCandidate } from "./image-plan.js";
import { generateKeys, imageScoreKeys, respondKeys, responseScoreKeys, type KeyedItem, type SampleOutcome } from "./item-keys.js";
import { selectBest, type CandidateOutcome } from "./select.js";

export interface ForecastWorker {
  name: string;
  fingerprint: WorkerFingerprint | null;
  batchSize: number;
}

export interface ForecastInput {
  seed: number;
  candidates: ImageCandidate[];
  generator: ForecastWorker;
  scorer: ForecastWorker;
  minScore?: number;
  responses?: { responders: ForecastWorker[]; scorers: ForecastWorker[]; decoding: Decoding; questionOf: (instruction: string) => string };
  /** A journaled result whose artifacts are intact, or undefined. */
  lookup: (key: string) => unknown;
}

export interface StageForecast {
  /** Items the stage computes with a model (generations and scores; failed or defective outputs are not scored). */
  items: number;
  hits: number;
  /** items - hits: what the run would compute (an upper bound when earlier results are not journaled). */
  toCompute: number;
}

/** All results of a batch, or null if one is missing. */
function batchHits<R>(items: KeyedItem[], lookup: (key: string) => unknown): R[] | null {
  const out: R[] = [];
  for (const i of items) {
    const r = i.key ? lookup(i.key) : undefined;
    if (r === undefined) return null;
    out.push(r as R);
  }
  return out;
}

/** The slices a ChunkGate would release: ids in fixed slices, each slice's accepted items, or null when one of its ids is unresolved. */
function gateSlices<T extends object>(ids: string[], size: number, resolved: Map<string, T | null>): (T[] | null)[] {
  return chunks(ids, size).map((slice) => (slice.every((id) => resolved.has(id)) ? slice.map((id) => resolved.get(id)!).filter((x): x is T => x !== null) : null));
}

export function forecastHits(input: ForecastInput): { images: StageForecast; responses?: StageForecast } {
  const { candidates, lookup } = input;
  const images: StageForecast = { items: candidates.length * 2, hits: 0, toCompute: 0 };
  const outcomes = new Map<string, CandidateOutcome>();
  const toScore = new Map<string, { candidate: ImageCandidate; sha256: string } | null>();
  for (const chunk of chunks(candidates, input.generator.batchSize)) {
    const hits = batchHits<{ artifact?: { sha256: string }; defects: string[]; error?: { message: string } }>(generateKeys(input.generator.fingerprint, chunk), lookup);
    if (!hits) continue;
    images.hits += chunk.length;
    chunk.forEach((c, i) => {
      const r = hits[i]!;
      outcomes.set(c.id, { id: c.id, promptId: c.promptId, imageNumber: c.imageNumber, defects: r.defects, ...(r.error ? { error: r.error.message } : {}) });
      toScore.set(c.id, r.artifact && !r.error && r.defects.length === 0 ? { candidate: c, sha256: r.artifact.sha256 } : null);
    });
  }
  let scoresKnown = 0;
  for (const batch of gateSlices(candidates.map((c) => c.id), input.scorer.batchSize, toScore)) {
    if (!batch) continue;
    const hits = batchHits<{ id: string; score?: number; error?: { message: string } }>(imageScoreKeys(input.scorer.fingerprint, batch), lookup);
    if (!hits) continue;
    images.hits += batch.length;
    for (const r of hits) {
      const o = outcomes.get(r.id)!;
      if (r.error) o.error = r.error.message;
      else o.score = r.score;
      scoresKnown++;
    }
  }
  // Candidates never scored (defects, errors) need no score call.
  const unscored = [...toScore.values()].filter((v) => v === null).length;
  images.items -= unscored;
  images.toCompute = images.items - images.hits;
  if (!input.responses) return { images };

  const r = input.responses;
  const perImage = r.responders.length * r.decoding.numSamples;
  const allKnown = toScore.size === candidates.length && scoresKnown + unscored === candidates.length;
  if (!allKnown) {
    const upper = new Set(candidates.map((c) => c.promptId)).size * perImage * (1 + r.scorers.length);
    return { images, responses: { items: upper, hits: 0, toCompute: upper } };
  }
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const kept = selectBest([...outcomes.values()], input.minScore)
    .filter((s) => s.kept !== null)
    .map((s) => {
      const c = byId.get(s.kept!)!;
      return { promptId: c.promptId, instruction: c.instruction, imageSha256: (toScore.get(c.id) as { sha256: string }).sha256, promptIndex: c.promptIndex };
    })
    .sort((a, b) => a.promptIndex - b.promptIndex);
  const responses: StageForecast = { items: kept.length * perImage * (1 + r.scorers.length), hits: 0, toCompute: 0 };
  const answers = new Map<string, { answerId: string; question: string; answer: string; imageSha256: string } | null>();
  for (const w of r.responders) {
    for (const chunk of chunks(kept, w.batchSize)) {
      const hits = batchHits<SampleOutcome[]>(respondKeys(w.fingerprint, input.seed, w.name, r.decoding, chunk), lookup);
      if (!hits) continue;
      responses.hits += chunk.length * r.decoding.numSamples;
      chunk.forEach((k, i) => {
        for (const s of hits[i]!) {
          const id = `${k.promptId}.${w.name}.s${s.sampleIndex}`;
          answers.set(id, !s.error && s.text.trim() ? { answerId: id, question: r.questionOf(k.instruction), answer: s.text, imageSha256: k.imageSha256 } : null);
        }
      });
    }
  }
  const answerIds = kept.flatMap((k) => r.responders.flatMap((w) => Array.from({ length: r.decoding.numSamples }, (_, i) => `${k.promptId}.${w.name}.s${i}`)));
  const unscorable = answerIds.filter((id) => answers.get(id) === null).length;
  responses.items -= unscorable * r.scorers.length;
  for (const s of r.scorers) {
    for (const batch of gateSlices(answerIds, s.batchSize, answers)) {
      if (!batch) continue;
      if (batchHits(responseScoreKeys(s.fingerprint, s.name, batch), lookup)) responses.hits += batch.length;
    }
  }
  responses.toCompute = responses.items - responses.hits;
  return { images, responses };
}
