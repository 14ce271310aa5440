// Pure: what each model call is asked per item (its request fields) and the cache keys of
// a batch of such items. The stages send these; `plan` forecasts cache hits with the same
// functions, so the two can never disagree about a key.
import { batchKeys, type WorkerFingerprint } from "./cache-keys.js";
import type { ResponsesStageConfig } from "../config/schema.js";
import type { Decoding } from "../gen/pdsdpo/v1/responder.js";
import type { ErrorInfo } from "../events/types.js";
import type { ImageCandidate } from "./image-plan.js";

type DecodingConfig = ResponsesStageConfig["decoding"];
import { derivedSeed } from "./seeds.js";

export interface KeyedItem {
  id: string;
  /** null when the worker's fingerprint is unknown: never cached. */
  key: string | null;
}

function keyed(op: string, fp: WorkerFingerprint | null, ids: string[], items: { params: unknown; inputs: string[] }[]): KeyedItem[] {
  const keys = fp ? batchKeys(op, fp, items) : ids.map(() => null);
  return ids.map((id, i) => ({ id, key: keys[i]! }));
}

export const OPS = {
  generate: "image.generate",
  imageScore: "image.score",
  respond: "response.generate",
  responseScore: "response.score",
  train: "train",
} as const;

/** The generator's request fields for one candidate. */
export function generateParams(c: ImageCandidate) {
  return { prompt: c.prompt, negativePrompt: c.negativePrompt, guidanceScale: c.guidanceScale, steps: c.steps, width: c.width, height: c.height, seed: c.seed, generatorDevice: c.generatorDevice };
}

export function generateKeys(fp: WorkerFingerprint | null, chunk: ImageCandidate[]): KeyedItem[] {
  // The CPU generator (the default) stays out of the key, as it was before the option existed.
  const params = (c: ImageCandidate) => {
    const { generatorDevice, ...rest } = generateParams(c);
    return generatorDevice === "cpu" ? rest : { ...rest, generatorDevice };
  };
  return keyed(OPS.generate, fp, chunk.map((c) => c.id), chunk.map((c) => ({ params: params(c), inputs: [] })));
}

export function imageScoreKeys(fp: WorkerFingerprint | null, batch: { candidate: ImageCandidate; sha256: string }[]): KeyedItem[] {
  return keyed(OPS.imageScore, fp, batch.map((b) => b.candidate.id), batch.map((b) => ({ params: { prompt: b.candidate.prompt }, inputs: [b.sha256] })));
}

/** The responder's Decoding message for the stage's decoding settings. */
export function decodingRequest(d: DecodingConfig): Decoding {
  return {
    maxNewTokens: d.max_new_tokens,
    doSample: d.do_sample,
    temperature: d.temperature ?? 0,
    topP: d.top_p ?? 0,
    topK: d.top_k ?? 0,
    repetitionPenalty: 0,
    numSamples: d.num_samples,
  };
}

/** One sample of a responder item, as the stage keeps it and the journal stores it. */
export interface SampleOutcome {
  sampleIndex: number;
  text: string;
  numTokens: number;
  finishReason: string;
  error?: ErrorInfo;
}

export interface RespondInput {
  promptId: string;
  instruction: string;
  imageSha256: string;
}

export function respondInput(k: { promptId: string; instruction: string; artifact: { sha256: string } }): RespondInput {
  return { promptId: k.promptId, instruction: k.instruction, imageSha256: k.artifact.sha256 };
}

/** A responder's RPC item for one kept image: `<prompt id>.<worker>`, seeded from that id. */
export function respondItem(experimentSeed: number, worker: string, k: RespondInput) {
  const id = `${k.promptId}.${worker}`;
  return { id, instruction: k.instruction, seed: derivedSeed(experimentSeed, id) };
}

export function respondKeys(fp: WorkerFingerprint | null, experimentSeed: number, worker: string, decoding: Decoding, chunk: RespondInput[]): KeyedItem[] {
  const items = chunk.map((k) => respondItem(experimentSeed, worker, k));
  return keyed(
    OPS.respond,
    fp,
    items.map((i) => i.id),
    items.map((it, i) => ({ params: { instruction: it.instruction, seed: it.seed, decoding }, inputs: [chunk[i]!.imageSha256] })),
  );
}

/** Scores of one answer by one scorer: journaled as `<answer id>@<scorer>`. */
export function responseScoreKeys(fp: WorkerFingerprint | null, scorer: string, batch: { answerId: string; question: string; answer: string; imageSha256: string }[]): KeyedItem[] {
  return keyed(
    OPS.responseScore,
    fp,
    batch.map((b) => `${b.answerId}@${scorer}`),
    // Only an empty answer is scored differently with score_empty_answers (it would fail
    // without): its key says so, so a failure journaled without never stands in for a score.
    batch.map((b) => ({ params: { question: b.question, answer: b.answer, ...(b.answer.trim() ? {} : { scoreEmpty: true }) }, inputs: [b.imageSha256] })),
  );
}

/** A whole training run as one item: its settings, the dataset and the images it names. */
export function trainKey(fp: WorkerFingerprint | null, params: unknown, inputs: string[], id = "adapter"): KeyedItem {
  return keyed(OPS.train, fp, [id], [{ params, inputs }])[0]!;
}
