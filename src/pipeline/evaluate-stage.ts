// The evaluate stage: each benchmark split on the base model and, when the run trained
// one, the base plus its adapter; eval/ gets per-run metrics, answers and a side-by-side table.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { resolvePath } from "../config/load.js";
import { StageFailedError } from "../errors.js";
import { popeFromImages } from "../plan/pope-from-run.js";
import type { StageContext } from "./stage-context.js";
import { blobRef, guarded } from "./stage-util.js";

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

export async function runEvaluateStage(ctx: StageContext): Promise<void> {
  const { loaded, bus, store, runDir, pool, signal } = ctx;
  const stage = loaded.config.stages.evaluate!;
  const evaluator = pool.get(stage.evaluator);
  const splits = splitsOf(ctx);
  const models = [["base", ""], ...(ctx.results.adapter ? [["trained", join(runDir.path, ctx.results.adapter.dir)]] : [])] as ["base" | "trained", string][];
  const t0 = performance.now();
  bus.emit({ type: "stage.started", stage: "evaluate", total: splits.length * models.length });
  const results: { benchmark: string; split: string; model: string; metrics: Record<string, number> }[] = [];
  try {
    for (const s of splits) {
      let data: Buffer;
      try {
        data = readFileSync(s.file);
      } catch {
        throw new StageFailedError(`benchmark ${s.benchmark} split ${s.split}: question file not found: ${s.file}`);
      }
      const questions = store.put(data, "application/jsonl");
      for (const [model, adapterDir] of models) {
        const req = {
          benchmark: s.benchmark,
          questions: blobRef(questions),
          imageRoot: s.imageRoot,
          adapterDir,
          decoding: { maxNewTokens: stage.max_new_tokens, doSample: false, temperature: 0, topP: 0, topK: 0, repetitionPenalty: 0, numSamples: 1 },
          maxBatchSize: stage.batch_size ?? evaluator.batchSize ?? 0,
          split: s.split,
        };
        const lines = data.toString().trim().split("\n").length;
        const step = `${s.benchmark}/${s.split}/${model}`;
        for await (const msg of guarded(pool, evaluator, "Evaluate", evaluator.client.evaluate(req, { deadlineMs: pool.deadlineMs(evaluator, lines), signal }))) {
          const ev = msg.event;
          if (ev?.$case === "progress") bus.emit({ type: "stage.progress", stage: "evaluate", step, done: ev.value.done, total: ev.value.total });
          if (ev?.$case === "result") {
            const dest = join(runDir.path, "eval", `${s.benchmark}-${s.split}-${model}.answers.jsonl`);
            if (ev.value.answers) {
              store.verify(ev.value.answers);
              runDir.placeArtifact(store.pathOf(ev.value.answers.sha256), dest);
            }
            results.push({ benchmark: s.benchmark, split: s.split, model, metrics: ev.value.metrics });
            bus.emit({ type: "eval.result", benchmark: s.benchmark, split: s.split, model, metrics: ev.value.metrics, answers: runDir.rel(dest) });
          }
        }
      }
    }
  } catch (e) {
    bus.emit({ type: "stage.finished", stage: "evaluate", status: "failed", counts: { runs: results.length }, seconds: (performance.now() - t0) / 1000 });
    throw e;
  }
  mkdirSync(join(runDir.path, "eval"), { recursive: true });
  runDir.writeAtomic(join(runDir.path, "eval", "metrics.json"), `${JSON.stringify(results, null, 2)}\n`);
  runDir.writeAtomic(join(runDir.path, "eval", "summary.md"), summaryTable(results));
  bus.emit({ type: "stage.finished", stage: "evaluate", status: "succeeded", counts: { runs: results.length }, seconds: (performance.now() - t0) / 1000 });
}

const SHOWN = ["accuracy", "precision", "recall", "f1", "yes_ratio", "unparseable_ratio"];

/** Pure: base vs trained, side by side, per benchmark split. */
export function summaryTable(results: { benchmark: string; split: string; model: string; metrics: Record<string, number> }[]): string {
  const lines = ["| benchmark | split | metric | base | trained | delta |", "| --- | --- | --- | --- | --- | --- |"];
  const keys = [...new Set(results.map((r) => `${r.benchmark}\0${r.split}`))];
  for (const key of keys) {
    const [benchmark, split] = key.split("\0") as [string, string];
    const of = (model: string) => results.find((r) => r.benchmark === benchmark && r.split === split && r.model === model)?.metrics;
    const base = of("base");
    const trained = of("trained");
    for (const m of SHOWN) {
      const b = base?.[m];
      const t = trained?.[m];
      const f = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(4));
      lines.push(`| ${benchmark} | ${split} | ${m} | ${f(b)} | ${f(t)} | ${b !== undefined && t !== undefined ? (t - b >= 0 ? "+" : "") + (t - b).toFixed(4) : "-"} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}
