// Pure: the evaluation side by side, for eval/summary.md and the report. First the paper's
// layout (PDS-DPO's tables: MMHal score / hallucination rate, AMBER CHAIR / Cover, POPE
// accuracy / precision, Object-HalBench CHAIR_s / CHAIR_i), one row per model variant, empty
// where a benchmark was not run; then each benchmark's detail: every metric of every split,
// the variants side by side with their delta from the first (the base).
import type { BenchmarkType } from "../config/schema.js";
import type { OverlapRecord } from "./overlap.js";

export interface EvalEntry {
  benchmark: string;
  /** The reader (absent in runs from before benchmark types: POPE). */
  benchmark_type?: BenchmarkType;
  split: string;
  model: string;
  metrics: Record<string, number>;
}

/** The paper's columns: a benchmark type's metric; POPE's are the mean over its splits. */
export const PAPER_COLUMNS: { title: string; type: BenchmarkType; metric: string }[] = [
  { title: "MMHal score", type: "mmhal", metric: "score" },
  { title: "MMHal hall.", type: "mmhal", metric: "hallucination_rate" },
  { title: "AMBER CHAIR", type: "amber", metric: "chair" },
  { title: "AMBER Cover", type: "amber", metric: "cover" },
  { title: "POPE acc", type: "pope", metric: "accuracy" },
  { title: "POPE prec", type: "pope", metric: "precision" },
  { title: "CHAIR_s", type: "object-halbench", metric: "chair_s" },
  { title: "CHAIR_i", type: "object-halbench", metric: "chair_i" },
];

export const typeOf = (e: EvalEntry): BenchmarkType => e.benchmark_type ?? "pope";
export const variantsOf = (results: EvalEntry[]): string[] => [...new Set(results.map((r) => r.model))];

export interface Table {
  head: string[];
  rows: string[][];
}

const num = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "" : x.toFixed(4));

/** The paper's table: one row per variant; a cell is the first benchmark of the column's type, averaged over its splits. */
export function paperTable(results: EvalEntry[]): Table {
  const rows = variantsOf(results).map((v) => [
    v,
    ...PAPER_COLUMNS.map((c) => {
      const first = results.find((r) => typeOf(r) === c.type)?.benchmark;
      const values = results.filter((r) => r.benchmark === first && r.model === v && r.metrics[c.metric] !== undefined).map((r) => r.metrics[c.metric]!);
      return num(values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined);
    }),
  ]);
  return { head: ["variant", ...PAPER_COLUMNS.map((c) => c.title)], rows };
}

/** One benchmark's detail: a row per split and metric, a column per variant, then each variant's delta from the first. */
export function detailTable(results: EvalEntry[], benchmark: string): Table {
  const mine = results.filter((r) => r.benchmark === benchmark);
  const variants = variantsOf(results);
  const [first, ...others] = variants;
  const rows: string[][] = [];
  for (const split of [...new Set(mine.map((r) => r.split))]) {
    const of = (v: string | undefined) => mine.find((r) => r.split === split && r.model === v)?.metrics;
    // By name: a worker's metrics come as a map, in no fixed order.
    const metrics = [...new Set(mine.filter((r) => r.split === split).flatMap((r) => Object.keys(r.metrics)))].sort();
    for (const m of metrics) {
      const base = of(first)?.[m];
      const deltas = others.map((v) => {
        const t = of(v)?.[m];
        return base !== undefined && t !== undefined ? (t - base >= 0 ? "+" : "") + (t - base).toFixed(4) : "";
      });
      rows.push([split, m, ...variants.map((v) => num(of(v)?.[m])), ...deltas]);
    }
  }
  return { head: ["split", "metric", ...variants, ...others.map((v) => `delta ${v}`)], rows };
}

export const SMOKE_NOTE = "a smoke check built from this run's own generated images that the trainer never saw; not the POPE benchmark";

/** The benchmarks in result order, each with its type and whether it is a smoke check. */
export function benchmarksOf(results: EvalEntry[]): { name: string; type: BenchmarkType; smoke: boolean }[] {
  const names = [...new Set(results.map((r) => r.benchmark))];
  return names.map((name) => {
    const type = typeOf(results.find((r) => r.benchmark === name)!);
    return { name, type, smoke: type === "smoke-pope" };
  });
}

function markdown(t: Table): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c || " ").join(" | ")} |`;
  return [line(t.head), line(t.head.map(() => "---")), ...t.rows.map(line)].join("\n");
}

/** eval/summary.md. */
export function summaryMarkdown(results: EvalEntry[], overlap?: OverlapRecord & { allowed?: boolean }): string {
  const out = ["# Evaluation", "", "Model variants side by side in the paper's layout (empty: the benchmark was not run).", "", markdown(paperTable(results)), ""];
  // A judge that could not rate counts 0 for those answers: say so beside the scores.
  for (const r of results) {
    const n = r.metrics.judge_errors ?? 0;
    if (n > 0) out.push(`**${r.benchmark} (${r.model}): the judge could not rate ${n} of ${r.metrics.questions ?? "?"} answers (rated 0; see eval/${r.benchmark}-${r.model}.judge.jsonl).**`, "");
  }
  if (overlap) {
    const n = overlap.overlaps.length;
    out.push(
      n === 0
        ? `Overlap check: none of ${overlap.benchmark_images} benchmark images matches any of ${overlap.training_images} training images (sha256, or dHash within ${overlap.dhash_max_distance} bits).`
        : `**Overlap: ${n} benchmark image${n === 1 ? "" : "s"} match${n === 1 ? "es" : ""} training images; evaluated anyway (allow_overlap: true): these results partly measure memorisation.**`,
      "",
    );
    for (const o of overlap.overlaps) out.push(`- ${o.benchmark}: ${o.image} = training image ${o.training_image} (${o.match}${o.match === "dhash" ? `, ${o.distance} bits` : ""})`);
    if (n) out.push("");
  }
  for (const b of benchmarksOf(results)) {
    out.push(`## ${b.name} (${b.type})`, "");
    if (b.smoke) out.push(`Smoke check: ${SMOKE_NOTE}.`, "");
    out.push(markdown(detailTable(results, b.name)), "");
  }
  return `${out.join("\n")}`;
}
