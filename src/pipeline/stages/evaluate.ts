// The evaluate stage: each benchmark split on every model variant of the run (the base
// model, and the base plus each adapter the run trained); eval/ gets per-variant metrics,
// answers and a side-by-side table.
import { EvaluatorServiceClient } from "../../gen/pdsdpo/v1/evaluator.js";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { resolvePath } from "../../config/load.js";
import { StageFailedError } from "../../errors.js";
import type { RunEvent } from "../../events/types.js";
import { popeFromImages } from "../../plan/pope-from-run.js";
import { listSource } from "../worker-pool.js";
import { runCachedBatches } from "../batch-runner.js";
import { referencedWorkers, type Stage, type StageContext, type StageResults, type StageRun } from "../stage.js";
import { blobRef } from "../stage-util.js";

export interface EvalResult {
  benchmark: string;
  split: string;
  /** The model variant: "base", "trained", or another name a later stage gives its adapter. */
  model: string;
  metrics: Record<string, number>;
  answers?: string;
}

declare module "../../events/types.js" {
  interface StageEvents {
    evaluate: { type: "eval.result" } & EvalResult;
  }
}
declare module "../../manifest/types.js" {
  interface StageSections {
    evaluate: { results: EvalResult[] };
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

interface Split {
  benchmark: string;
  split: string;
  file: string;
  imageRoot: string;
}

/** The question files to run: configured files, or a benchmark built from the run's kept images. */
function splitsOf(ctx: StageContext): Split[] {
  const { loaded, runDir } = ctx;
  const out: Split[] = [];
  for (const b of loaded.config.stages.evaluate!.benchmarks) {
    const files: [string, string][] = b.path ? [["all", b.path]] : Object.entries(b.splits ?? {}).map(([k, v]) => [k, v!]);
    if (files.length === 0) {
      const kept = ctx.results.images ?? [];
      if (kept.length === 0) throw new StageFailedError(`benchmark ${b.name}: no file given and the run kept no images to build one from`);
      const file = join(runDir.path, "eval", `${b.name}-from-run.jsonl`);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, popeFromImages(kept).map((r) => `${JSON.stringify(r)}\n`).join(""));
      out.push({ benchmark: b.name, split: "run", file, imageRoot: runDir.path });
      continue;
    }
    for (const [split, f] of files) {
      const file = resolvePath(loaded.baseDir, f);
      out.push({ benchmark: b.name, split, file, imageRoot: b.image_root ? resolvePath(loaded.baseDir, b.image_root) : dirname(file) });
    }
  }
  return out;
}

async function run(ctx: StageContext, stageRun: StageRun): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal } = ctx;
  const stage = loaded.config.stages.evaluate!;
  const evaluator = pool.get(stage.evaluator);
  const splits = splitsOf(ctx);
  const variants = modelVariants(ctx.results, runDir.path);
  stageRun.begin(splits.length * variants.length);
  const results: EvalResult[] = [];
  stageRun.counts = { runs: 0 };
  for (const s of splits) {
    let data: Buffer;
    try {
      data = readFileSync(s.file);
    } catch {
      throw new StageFailedError(`benchmark ${s.benchmark} split ${s.split}: question file not found: ${s.file}`);
    }
    const questions = store.put(data, "application/jsonl");
    const lines = data.toString().trim().split("\n").length;
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
            benchmark: s.benchmark,
            questions: blobRef(questions),
            imageRoot: s.imageRoot,
            adapterDir: variant.adapterDir,
            decoding: { maxNewTokens: stage.max_new_tokens, doSample: false, temperature: 0, topP: 0, topK: 0, repetitionPenalty: 0, numSamples: 1 },
            maxBatchSize: stage.batch_size ?? evaluator.batchSize,
            split: s.split,
            references: {},
          };
          const step = `${s.benchmark}/${s.split}/${variant.name}`;
          for await (const msg of replica.client.stream(EvaluatorServiceClient, "Evaluate", (c, deadline) => c.evaluate(req, { deadline }), options)) {
            const ev = msg.event;
            if (ev?.$case === "progress") stageRun.progress(step, ev.value.done, ev.value.total);
            if (ev?.$case !== "result") continue;
            const dest = join(runDir.path, "eval", `${s.benchmark}-${s.split}-${variant.name}.answers.jsonl`);
            if (ev.value.answers) {
              store.verify(ev.value.answers);
              runDir.placeArtifact(store.pathOf(ev.value.answers.sha256), dest);
            }
            yield { id: step, result: { benchmark: s.benchmark, split: s.split, model: variant.name, metrics: ev.value.metrics, answers: runDir.rel(dest) } };
          }
        },
        onResult: (r) => {
          results.push(r);
          stageRun.counts.runs = results.length;
          bus.emit({ type: "eval.result", ...r });
        },
      },
      signal,
    );
  }
  // Variants may finish in any order on several replicas: the files list them in plan order.
  const order = (r: EvalResult) => splits.findIndex((s) => s.benchmark === r.benchmark && s.split === r.split) * variants.length + variants.findIndex((v) => v.name === r.model);
  results.sort((a, b) => order(a) - order(b));
  mkdirSync(join(runDir.path, "eval"), { recursive: true });
  runDir.writeAtomic(join(runDir.path, "eval", "metrics.json"), `${JSON.stringify(results.map(({ answers: _, ...r }) => r), null, 2)}\n`);
  runDir.writeAtomic(join(runDir.path, "eval", "summary.md"), summaryTable(results));
}

const SHOWN = ["accuracy", "precision", "recall", "f1", "yes_ratio", "unparseable_ratio"];

/** Pure: every variant side by side per benchmark split, with each one's delta from the first (the base). */
export function summaryTable(results: Omit<EvalResult, "answers">[]): string {
  const variants = [...new Set(results.map((r) => r.model))];
  const [first, ...others] = variants;
  const head = ["benchmark", "split", "metric", ...variants, ...others.map((v) => `delta ${v}`)];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  const f = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(4));
  for (const key of [...new Set(results.map((r) => `${r.benchmark}\0${r.split}`))]) {
    const [benchmark, split] = key.split("\0") as [string, string];
    const of = (model: string | undefined) => results.find((r) => r.benchmark === benchmark && r.split === split && r.model === model)?.metrics;
    for (const m of SHOWN) {
      const base = of(first)?.[m];
      const deltas = others.map((v) => {
        const t = of(v)?.[m];
        return base !== undefined && t !== undefined ? (t - base >= 0 ? "+" : "") + (t - base).toFixed(4) : "-";
      });
      lines.push(`| ${[benchmark, split, m, ...variants.map((v) => f(of(v)?.[m])), ...deltas].join(" | ")} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function section() {
  const results: EvalResult[] = [];
  return {
    listen(e: RunEvent) {
      if (e.type === "eval.result") results.push({ benchmark: e.benchmark, split: e.split, model: e.model, metrics: e.metrics, answers: e.answers });
    },
    build() {
      return { section: { results }, ...(results.length ? { outputs: { eval: results.map(({ benchmark, split, model, metrics }) => ({ benchmark, split, model, metrics })) } } : {}) };
    },
  };
}

export const evaluateStage: Stage<"evaluate"> = {
  name: "evaluate",
  events: ["eval.result"],
  cached: false,
  workers: (config) => referencedWorkers(config, "evaluate"),
  plan({ loaded }) {
    const s = loaded.config.stages.evaluate!;
    return { benchmarks: s.benchmarks.length, models: loaded.config.stages.train ? 2 : 1 };
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
    if (e.type !== "eval.result") return null;
    const m = e.metrics;
    return `eval ${e.benchmark}/${e.split} ${e.model}: accuracy=${m.accuracy?.toFixed(4)} precision=${m.precision?.toFixed(4)} recall=${m.recall?.toFixed(4)} f1=${m.f1?.toFixed(4)} unparseable=${m.unparseable}`;
  },
};
