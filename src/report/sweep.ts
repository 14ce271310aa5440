// Pure: a data-size sweep as the paper's Table 3 (rows: the base model, then each size;
// columns: each benchmark split's metrics, mean ± spread over the seeds) for eval/sweep.md
// and the report, and one line plot per metric (x: size, y: the mean, a band of ± spread,
// the base as a dashed line).
import type { SweepSection } from "../manifest/sweep.js";
import { trainingCurves } from "./diagnostics.js";
import { meanSpread } from "../plan/sweep.js";
import { bandChart, esc } from "./svg.js";

/** Raw counts, not rates: left out of the table and the plots. */
const COUNTS = new Set(["questions", "unparseable", "empty_answers"]);

export interface SweepColumn {
  benchmark: string;
  split: string;
  metric: string;
}

export interface SweepCell {
  mean: number;
  spread: number;
  /** Seeds the cell averages (0: no result). */
  n: number;
}

export interface SweepRow {
  /** "base", or the size. */
  label: string;
  size: number | null;
  seeds: number[];
  cells: SweepCell[];
}

export interface SweepTable {
  columns: SweepColumn[];
  rows: SweepRow[];
}

/** POPE's metrics lead, in the paper's order; others follow by name (a metrics map has no order of its own). */
const LEADING = ["accuracy", "precision", "recall", "f1", "yes_ratio"];
const metricOrder = (a: string, b: string) => {
  const [i, j] = [LEADING.indexOf(a), LEADING.indexOf(b)].map((k) => (k < 0 ? LEADING.length : k)) as [number, number];
  return i !== j ? i - j : a < b ? -1 : a > b ? 1 : 0;
};

/** The table: the base first, then each size ascending; a column per benchmark split (first-seen order) and metric. */
export function sweepTable(sweep: SweepSection): SweepTable {
  const metrics = new Map<string, Set<string>>();
  for (const m of [...sweep.base, ...sweep.points.flatMap((p) => p.metrics)]) {
    const key = `${m.benchmark}\0${m.split}`;
    const set = metrics.get(key) ?? new Set<string>();
    for (const metric of Object.keys(m.metrics)) if (!COUNTS.has(metric)) set.add(metric);
    metrics.set(key, set);
  }
  const columns: SweepColumn[] = [...metrics].flatMap(([key, set]) => {
    const [benchmark, split] = key.split("\0") as [string, string];
    return [...set].sort(metricOrder).map((metric) => ({ benchmark, split, metric }));
  });
  const valueOf = (metrics: SweepSection["base"], c: SweepColumn) => metrics.find((m) => m.benchmark === c.benchmark && m.split === c.split)?.metrics[c.metric];
  const cellOf = (runs: SweepSection["base"][], c: SweepColumn): SweepCell => meanSpread(runs.map((r) => valueOf(r, c)).filter((v): v is number => typeof v === "number"));
  const rows: SweepRow[] = [{ label: "base", size: null, seeds: [], cells: columns.map((c) => cellOf([sweep.base], c)) }];
  for (const size of [...new Set(sweep.points.map((p) => p.size))].sort((a, b) => a - b)) {
    const points = sweep.points.filter((p) => p.size === size);
    rows.push({ label: String(size), size, seeds: points.map((p) => p.seed), cells: columns.map((c) => cellOf(points.map((p) => p.metrics), c)) });
  }
  return { columns, rows };
}

const colName = (c: SweepColumn) => `${c.benchmark}/${c.split} ${c.metric}`;

function cellText(c: SweepCell, seeds: number): string {
  if (c.n === 0) return "-";
  return seeds > 1 ? `${c.mean.toFixed(4)} ± ${c.spread.toFixed(4)}` : c.mean.toFixed(4);
}

/** eval/sweep.md: the table in Markdown, with how the spread is computed. */
export function sweepMarkdown(t: SweepTable): string {
  const head = ["size", "seeds", ...t.columns.map(colName)];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  for (const r of t.rows) lines.push(`| ${[r.label, r.seeds.join(", ") || "-", ...r.cells.map((c) => cellText(c, r.seeds.length))].join(" | ")} |`);
  return `${lines.join("\n")}\n\nmean ± sample standard deviation over the seeds (a size with one seed shows its value); the base model is evaluated once.\n`;
}

/** The chart's name for a column: sweep-<benchmark>-<split>-<metric>. */
export function sweepChartName(c: SweepColumn): string {
  return `sweep-${c.benchmark}-${c.split}-${c.metric}`.replace(/[^A-Za-z0-9_-]+/g, "_");
}

/** The report's sweep section: the table, then one plot per metric. */
export function sweepHtml(t: SweepTable): string {
  const head = `<tr><th>size</th><th>seeds</th>${t.columns.map((c) => `<th>${esc(colName(c))}</th>`).join("")}</tr>`;
  const rows = t.rows.map((r) => `<tr><td>${esc(r.label)}</td><td>${esc(r.seeds.join(", ") || "-")}</td>${r.cells.map((c) => `<td>${esc(cellText(c, r.seeds.length))}</td>`).join("")}</tr>`).join("");
  const base = t.rows.find((r) => r.size === null);
  const sized = t.rows.filter((r) => r.size !== null);
  const plots = t.columns.map((c, i) => {
    const chart = bandChart(
      sweepChartName(c),
      [{ name: "trained (mean ± sd over seeds)", points: sized.filter((r) => r.cells[i]!.n > 0).map((r) => ({ x: r.size!, mean: r.cells[i]!.mean, spread: r.cells[i]!.spread })) }],
      base && base.cells[i]!.n > 0 ? [{ name: "base", value: base.cells[i]!.mean }] : [],
    );
    return `<figure><figcaption>${esc(`${colName(c)} by data size`)}</figcaption>${chart}</figure>`;
  });
  return `<h2>Data-size sweep</h2><table class="sweep">${head}${rows}</table><p class="note">Mean ± sample standard deviation over the seeds; the base model is evaluated once.</p>${plots.join("")}`;
}

/** A sweep's training curves: each point's loss by step, one series a point. */
export function sweepLossCurves(points: { name: string; steps: Record<string, number>[] }[]): { name: string; points: [number, number][] }[] {
  return points.flatMap((p) => trainingCurves(p.steps, ["loss"]).map((c) => ({ ...c, name: `${p.name} loss` })));
}
