// The evaluate stage: every benchmark split on every model variant of the run (the base
// model, and the base plus each adapter the run trained). Before any model call, the
// overlap check compares every benchmark image with every image the trainer saw and refuses
// to evaluate on an overlap unless allow_overlap. MMHal-Bench's answers are then rated by
// its judge (a responder) with MMHal's rubric. eval/ gets per-variant metrics, answers and
// the side-by-side summary.
import { EvaluatorServiceClient } from "../../gen/pdsdpo/v1/evaluator.js";
import { ResponderServiceClient } from "../../gen/pdsdpo/v1/responder.js";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { benchmarkType, type BenchmarkType } from "../../config/schema.js";
import { BenchmarkOverlapError, IntegrityError, StageFailedError } from "../../errors.js";
import type { RunEvent } from "../../events/types.js";
import { loadBenchmarks, splitFiles, type BenchmarkSplit } from "../../eval/load.js";
import { mmhalImageName } from "../../eval/formats.js";
import { fingerprint, fingerprintFile, type ImageFingerprint } from "../../eval/image-hash.js";
import { judgePrompt, mmhalMetrics, parseRating, responsesFile, type MmhalRow } from "../../eval/mmhal.js";
import { DHASH_MAX_DISTANCE, findOverlaps, type HashedImage, type OverlapRecord } from "../../eval/overlap.js";
import { summaryMarkdown } from "../../eval/summary.js";
import { popeFromImages } from "../../plan/pope-from-run.js";
import { derivedSeed } from "../../plan/seeds.js";
import type { ArtifactInfo } from "../../store/cas.js";
import { chunks } from "../../util/async-queue.js";
import { listSource } from "../worker-pool.js";
import { runCachedBatches } from "../batch-runner.js";
import { referencedWorkers, type Stage, type StageContext, type StageResults, type StageRun } from "../stage.js";
import { blobRef } from "../stage-util.js";

export interface EvalResult {
  /** The benchmark's name (its label). */
  benchmark: string;
  /** Its reader (config `type`); absent in runs from before benchmark types (POPE). */
  benchmark_type?: BenchmarkType;
  split: string;
  /** The model variant: "base", "trained", or another name a later stage gives its adapter. */
  model: string;
  metrics: Record<string, number>;
  answers?: string;
}

/** The overlap check's outcome as the manifest keeps it: counts, each overlap, and whether the run evaluated anyway. */
export type OverlapSection = OverlapRecord & { allowed: boolean };

declare module "../../events/types.js" {
  interface StageEvents {
    evaluate: ({ type: "eval.result" } & EvalResult) | ({ type: "eval.overlap" } & OverlapSection);
  }
}
declare module "../../manifest/types.js" {
  interface StageSections {
    evaluate: { results: EvalResult[]; overlap?: OverlapSection };
  }
  interface ManifestOutputs {
    eval: Omit<EvalResult, "answers">[];
  }
}

/** A model evaluated: a name and the adapter on the base ("" for the base itself). */
export interface ModelVariant {
  name: string;
  adapterDir: string;
}

/** Pure: the variants of a run: the base first (evaluated once), then each trained adapter by its name ("trained", or each sweep point's). */
export function modelVariants(results: StageResults, runDir: string): ModelVariant[] {
  return [{ name: "base", adapterDir: "" }, ...(results.adapters ?? []).map((a) => ({ name: a.name, adapterDir: join(runDir, a.dir) }))];
}

/** The question files to run: the configured benchmarks' (checked again now: files may have changed since `validate`), and a smoke-pope built from the images no trainer saw. */
function splitsOf(ctx: StageContext, training: HashedImage[]): BenchmarkSplit[] {
  const { loaded } = ctx;
  const stage = loaded.config.stages.evaluate!;
  const { splits, issues } = loadBenchmarks(stage, loaded.baseDir);
  if (issues.length) throw new StageFailedError(`stages.evaluate.benchmarks[${issues[0]!.index}]: ${issues[0]!.message}`);
  const out: BenchmarkSplit[] = [];
  for (const b of stage.benchmarks) {
    if (benchmarkType(b) === "smoke-pope") out.push(smokePope(ctx, b.name, stage.max_new_tokens, training));
    else out.push(...splits.filter((s) => s.benchmark === b.name));
  }
  return out;
}

/**
 * The smoke-pope: POPE-format questions about generated candidates the image scorer did not
 * keep, so no trainer saw them; a candidate that is (nearly) a training image anyway is left
 * out, so the overlap check never has to refuse it. Images go to eval/<name>-images/.
 */
function smokePope(ctx: StageContext, name: string, maxNewTokens: number, training: HashedImage[]): BenchmarkSplit {
  const { runDir, store } = ctx;
  // Through the dHash cache: the overlap check fingerprints the placed copies again (a cache hit then).
  const candidates = (ctx.results.unkept?.() ?? []).map((u) => ({ ...u, fp: fingerprintFile(store.pathOf(u.artifact.sha256), "generated candidate", dhashCache(ctx)) }));
  const nearTraining = new Set(findOverlaps([{ name, images: candidates.map((c) => ({ path: c.id, fp: c.fp })) }], training).overlaps.map((o) => o.image));
  const images = candidates.filter((c) => !nearTraining.has(c.id));
  if (images.length === 0) throw new StageFailedError(`benchmark ${name}: no generated image that the trainer never saw to build a smoke check from (the images stage keeps one image a prompt: generate more, e.g. more guidance_scales)`);
  const dir = join(runDir.path, "eval", `${name}-images`);
  mkdirSync(dir, { recursive: true });
  const placed = images.map((c) => {
    const dest = join(dir, `${c.id}.png`);
    runDir.placeArtifact(store.pathOf(c.artifact.sha256), dest);
    return { id: c.id, category: c.category, path: runDir.rel(dest) };
  });
  const file = join(runDir.path, "eval", `${name}.questions.jsonl`);
  runDir.writeAtomic(file, popeFromImages(placed).map((r) => `${JSON.stringify(r)}\n`).join(""));
  return { benchmark: name, type: "smoke-pope", split: "run", file, imageRoot: runDir.path, references: {}, maxNewTokens, judgeMaxNewTokens: 0, images: placed.map((p) => ({ ref: p.path, path: p.path })) };
}

/** The images the trainer saw: those of the run's dataset/pairs.jsonl (its own pairs, or the imported dataset's), when the run trains. */
function trainingImages(ctx: StageContext): HashedImage[] {
  const { runDir, loaded } = ctx;
  if (!loaded.config.stages.train) return [];
  const rel = ctx.results.dataset?.path ?? join("dataset", "pairs.jsonl");
  const file = isAbsolute(rel) ? rel : join(runDir.path, rel);
  if (!existsSync(file)) return [];
  const paths = new Set<string>();
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .forEach((l) => {
      for (const p of (JSON.parse(l) as { images?: string[] }).images ?? []) paths.add(p);
    });
  return [...paths].map((p) => ({ path: p, fp: fingerprintFile(isAbsolute(p) ? p : join(runDir.path, p), "training image", dhashCache(ctx)) }));
}

/** Every benchmark image against every training image; refuses an overlap unless allow_overlap. */
function overlapCheck(ctx: StageContext, splits: BenchmarkSplit[], training: HashedImage[]): OverlapSection {
  const byBenchmark = new Map<string, Map<string, ImageFingerprint>>();
  for (const s of splits) {
    const seen = byBenchmark.get(s.benchmark) ?? byBenchmark.set(s.benchmark, new Map()).get(s.benchmark)!;
    for (const im of s.images) {
      if (seen.has(im.ref)) continue;
      const what = `benchmark ${s.benchmark} image`;
      seen.set(im.ref, "bytes" in im ? fingerprintBytes(im.bytes, `${what} ${im.ref}`) : fingerprintFile(isAbsolute(im.path) ? im.path : join(s.imageRoot, im.path), what, dhashCache(ctx)));
    }
  }
  const record = findOverlaps([...byBenchmark].map(([name, m]) => ({ name, images: [...m].map(([path, fp]) => ({ path, fp })) })), training, DHASH_MAX_DISTANCE);
  const allowed = ctx.loaded.config.stages.evaluate!.allow_overlap;
  const section = { ...record, allowed };
  ctx.bus.emit({ type: "eval.overlap", ...section });
  ctx.runDir.writeAtomic(join(ctx.runDir.path, "eval", "overlap.json"), `${JSON.stringify(section, null, 2)}\n`);
  const first = record.overlaps[0];
  if (first && !allowed) {
    const more = record.overlaps.length - 1;
    throw new BenchmarkOverlapError(
      `benchmark ${first.benchmark}: image ${first.image} is training image ${first.training_image} (${first.match === "sha256" ? "same bytes" : `dHash ${first.distance} bits apart`})${more ? ` (and ${more} more overlaps, listed in eval/overlap.json)` : ""}; evaluating on it measures memorisation: remove it, or set stages.evaluate.allow_overlap: true`,
    );
  }
  if (first) ctx.bus.emit({ type: "warning", message: `evaluating on ${record.overlaps.length} benchmark image(s) the trainer saw (allow_overlap): see eval/overlap.json` });
  return section;
}

/** The store's cache of image dHashes by sha256. */
const dhashCache = (ctx: StageContext) => join(ctx.store.root, "cache", "dhash-v1");

/** An image inside a question file (base64); a corrupt one is one line naming it. */
function fingerprintBytes(bytes: Buffer, what: string): ImageFingerprint {
  try {
    return fingerprint(bytes);
  } catch (e) {
    throw new IntegrityError(`${what}: ${(e as Error).message}`);
  }
}

const DECODING = { doSample: false, temperature: 0, topP: 0, topK: 0, repetitionPenalty: 0, numSamples: 1 };

async function run(ctx: StageContext, stageRun: StageRun): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal } = ctx;
  const stage = loaded.config.stages.evaluate!;
  const evaluator = pool.get(stage.evaluator);
  mkdirSync(join(runDir.path, "eval"), { recursive: true });
  const training = trainingImages(ctx);
  const splits = splitsOf(ctx, training);
  const overlap = overlapCheck(ctx, splits, training);
  const variants = modelVariants(ctx.results, runDir.path);
  stageRun.begin(splits.length * variants.length);
  const results: EvalResult[] = [];
  /** Each call's answers by question id, by step: the judge rates MMHal's. */
  const answersOf = new Map<string, Map<string, string>>();
  stageRun.counts = { runs: 0, benchmark_images: overlap.benchmark_images, overlaps: overlap.overlaps.length };
  for (const s of splits) {
    const questions = store.put(readFileSync(s.file), "application/octet-stream");
    const references = Object.fromEntries(Object.entries(s.references).map(([role, f]) => [role, blobRef(store.put(readFileSync(f), "application/octet-stream"))]));
    const lines = Math.max(1, s.images.length);
    // Each variant is one call; its question file names images outside the store, so it is never journaled.
    await runCachedBatches<ModelVariant, EvalResult>(
      ctx,
      {
        stage: "evaluate",
        op: "evaluate",
        worker: stage.evaluator,
        source: listSource(variants),
        size: () => lines,
        items: (v) => [{ id: `${s.benchmark}/${s.split}/${v.name}`, key: null }],
        rpc: "Evaluate",
        async *call(replica, variant, options) {
          const req = {
            // The smoke check is read as POPE.
            benchmark: s.type === "smoke-pope" ? "pope" : s.type,
            questions: blobRef(questions),
            imageRoot: s.imageRoot,
            adapterDir: variant.adapterDir,
            decoding: { maxNewTokens: s.maxNewTokens, ...DECODING },
            maxBatchSize: stage.batch_size ?? evaluator.batchSize,
            split: s.split,
            references,
          };
          const step = `${s.benchmark}/${s.split}/${variant.name}`;
          const answers = new Map<string, string>();
          answersOf.set(step, answers);
          for await (const msg of replica.client.stream(EvaluatorServiceClient, "Evaluate", (c, deadline) => c.evaluate(req, { deadline }), options)) {
            const ev = msg.event;
            if (ev?.$case === "progress") stageRun.progress(step, ev.value.done, ev.value.total);
            if (ev?.$case === "answer") answers.set(ev.value.questionId, ev.value.answer);
            if (ev?.$case !== "result") continue;
            const dest = join(runDir.path, "eval", `${s.benchmark}-${s.split}-${variant.name}.answers.jsonl`);
            if (ev.value.answers) {
              store.verify(ev.value.answers);
              runDir.placeArtifact(store.pathOf(ev.value.answers.sha256), dest);
            }
            yield { id: step, result: { benchmark: s.benchmark, benchmark_type: s.type, split: s.split, model: variant.name, metrics: ev.value.metrics, answers: runDir.rel(dest) } };
          }
        },
        onResult: (r) => {
          results.push(r);
        },
      },
      signal,
    );
  }
  // MMHal-Bench: the worker answers, its judge rates.
  for (const r of results) {
    const s = splits.find((x) => x.benchmark === r.benchmark && x.split === r.split)!;
    if (s.type === "mmhal") r.metrics = { ...r.metrics, ...(await judgeMmhal(ctx, s, r.model, answersOf.get(`${r.benchmark}/${r.split}/${r.model}`) ?? new Map())) };
    stageRun.counts.runs = (stageRun.counts.runs ?? 0) + 1;
    bus.emit({ type: "eval.result", ...r });
  }
  // Variants may finish in any order on several replicas: the files list them in plan order.
  const order = (r: EvalResult) => splits.findIndex((s) => s.benchmark === r.benchmark && s.split === r.split) * variants.length + variants.findIndex((v) => v.name === r.model);
  results.sort((a, b) => order(a) - order(b));
  runDir.writeAtomic(join(runDir.path, "eval", "metrics.json"), `${JSON.stringify(results.map(({ answers: _, ...r }) => r), null, 2)}\n`);
  runDir.writeAtomic(join(runDir.path, "eval", "summary.md"), summaryMarkdown(results, overlap));
}

/**
 * Rates one variant's MMHal-Bench answers with its judge (one prompt an answer, MMHal's
 * rubric) and writes eval/<benchmark>-<variant>.responses.json (the file MMHal's own GPT-4
 * scoring script reads) and .judge.jsonl (each reply and its rating).
 */
async function judgeMmhal(ctx: StageContext, s: BenchmarkSplit, variant: string, answers: Map<string, string>): Promise<Record<string, number>> {
  const { store, runDir, loaded, signal } = ctx;
  const rows = JSON.parse(readFileSync(s.file, "utf8")) as MmhalRow[];
  // The evaluator's question ids are the rows' 0-based positions.
  const texts = rows.map((_, i) => answers.get(String(i)) ?? "");
  runDir.writeAtomic(join(runDir.path, "eval", `${s.benchmark}-${variant}.responses.json`), responsesFile(rows, texts));
  const judge = ctx.pool.get(s.judge!);
  const images = new Map<string, ArtifactInfo>();
  const items = rows.map((row, i) => {
    const file = join(s.imageRoot, mmhalImageName(row.image_src));
    const image = images.get(file) ?? images.set(file, store.put(readFileSync(file), "application/octet-stream")).get(file)!;
    const id = `${s.benchmark}.${variant}.q${i}`;
    return { id, image: blobRef(image), instruction: judgePrompt(row, texts[i]!), seed: derivedSeed(loaded.config.seed, id), decoding: { maxNewTokens: s.judgeMaxNewTokens, ...DECODING } };
  });
  const replies = new Map<string, string>();
  const failed = new Map<string, string>();
  await runCachedBatches<typeof items, { id: string; text: string; error?: string }>(
    ctx,
    {
      stage: "evaluate",
      op: "judge",
      worker: judge.name,
      source: listSource(chunks(items, judge.batchSize)),
      // The rating is cheap to redo and depends on answers that are never journaled.
      items: (chunk) => chunk.map((it) => ({ id: it.id, key: null })),
      rpc: "Respond",
      async *call(replica, chunk, options) {
        for await (const msg of replica.client.stream(ResponderServiceClient, "Respond", (c, deadline) => c.respond({ items: chunk, maxBatchSize: chunk.length }, { deadline }), options)) {
          if (msg.event?.$case !== "response") continue;
          const r = msg.event.value;
          yield { id: r.id, result: { id: r.id, text: r.text, ...(r.error ? { error: `${r.error.code}: ${r.error.message}` } : {}) } };
        }
      },
      onResult: (r) => {
        if (r.error) failed.set(r.id, r.error);
        else replies.set(r.id, r.text);
      },
    },
    signal,
  );
  // A reply the judge could not give has no rating: 0, as MMHal's script rates a reply without one; counted apart.
  const ratings = items.map((it) => parseRating(replies.get(it.id) ?? ""));
  runDir.writeAtomic(
    join(runDir.path, "eval", `${s.benchmark}-${variant}.judge.jsonl`),
    items.map((it, i) => `${JSON.stringify({ question_id: String(i), judge: judge.name, reply: replies.get(it.id) ?? "", rating: ratings[i], ...(failed.has(it.id) ? { error: failed.get(it.id) } : {}) })}\n`).join(""),
  );
  const first = [...failed][0];
  if (first) ctx.bus.emit({ type: "warning", message: `judge ${judge.name} failed on ${failed.size} of ${items.length} ${s.benchmark} answers of ${variant} (rated 0, counted as judge_errors); first, ${first[0]}: ${first[1]}` });
  return { ...mmhalMetrics(rows, ratings), judge_errors: failed.size };
}

function section() {
  const results: EvalResult[] = [];
  let overlap: OverlapSection | undefined;
  return {
    listen(e: RunEvent) {
      if (e.type === "eval.result") results.push({ benchmark: e.benchmark, ...(e.benchmark_type ? { benchmark_type: e.benchmark_type } : {}), split: e.split, model: e.model, metrics: e.metrics, answers: e.answers });
      if (e.type === "eval.overlap") overlap = { benchmark_images: e.benchmark_images, training_images: e.training_images, dhash_max_distance: e.dhash_max_distance, overlaps: e.overlaps, allowed: e.allowed };
    },
    build() {
      return {
        section: { results, ...(overlap ? { overlap } : {}) },
        ...(results.length ? { outputs: { eval: results.map(({ answers: _, ...r }) => r) } } : {}),
      };
    },
  };
}

export const evaluateStage: Stage<"evaluate"> = {
  name: "evaluate",
  events: ["eval.result", "eval.overlap"],
  cached: false,
  workers: (config) => referencedWorkers(config, "evaluate"),
  plan({ loaded }) {
    const s = loaded.config.stages.evaluate!;
    const sweep = loaded.config.sweep;
    // The base, and one adapter a training (each sweep point's).
    const trained = !loaded.config.stages.train ? 0 : sweep ? sweep["train.data_size"].length * (sweep.seeds?.length ?? 1) : 1;
    const splits = s.benchmarks.reduce((n, b) => n + Math.max(1, splitFiles(b).length), 0);
    return { benchmarks: s.benchmarks.length, splits, models: 1 + trained };
  },
  run,
  // Nothing later reads evaluation results.
  restore() {},
  section,
  compare(before, after, tol) {
    const others = after.stages.evaluate?.results ?? [];
    for (const r of before.stages.evaluate?.results ?? []) {
      const m = others.find((x) => x.benchmark === r.benchmark && x.split === r.split && x.model === r.model);
      const item = `${r.benchmark}/${r.split}/${r.model}`;
      if (!m) return { stage: "evaluate", item, what: "missing from the replay" };
      for (const [k, v] of Object.entries(r.metrics)) {
        const w = m.metrics[k];
        if (typeof v === "number" && typeof w === "number" ? Math.abs(v - w) > tol.metric : v !== w) return { stage: "evaluate", item, what: `${k} ${String(v)} vs ${String(w)}` };
      }
    }
    return null;
  },
  line(e) {
    if (e.type === "eval.overlap") return `overlap check: ${e.benchmark_images} benchmark images vs ${e.training_images} training images: ${e.overlaps.length} overlap(s)${e.overlaps.length && e.allowed ? " (allowed)" : ""}`;
    if (e.type !== "eval.result") return null;
    const shown = Object.entries(e.metrics).slice(0, 6).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(4)}`);
    return `eval ${e.benchmark}/${e.split} ${e.model}: ${shown.join(" ")}`;
  },
};
