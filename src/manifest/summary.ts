// Pure: what a person reads of a run's manifest (runs, show) and how two runs differ (diff).
// Values are read defensively: manifests of older versions, failed runs and hand-copied ones
// may lack sections; only what is there is shown or compared.
import { short } from "./diff.js";
import type { Manifest } from "./types.js";

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

export interface StageSummary {
  status: string;
  total?: number;
  seconds?: number;
  counts: Record<string, number>;
}

export interface RunSummary {
  id: string;
  status: string;
  started: string | null;
  finished: string | null;
  duration_s: number | null;
  /** Stages that succeeded, in run order. */
  stages_done: string[];
  stages: Record<string, StageSummary>;
  pairs: number | null;
  /** Final metrics: `train.<metric>` (a sweep point: `train.<point>.<metric>`) and `<benchmark>.<split>.<model>.<metric>`. */
  metrics: Record<string, number>;
  error?: string;
  replay_of?: string;
}

function metricsOf(m: Manifest): Record<string, number> {
  const out: Record<string, number> = {};
  const add = (prefix: string, values: unknown) => {
    for (const [k, v] of Object.entries(obj(values))) if (num(v) !== undefined) out[`${prefix}.${k}`] = v as number;
  };
  const train = obj(obj(m.stages).train);
  add("train", train.final_metrics);
  for (const p of arr(train.points)) add(`train.${String(obj(p).name)}`, obj(p).final_metrics);
  for (const r of arr(obj(m.outputs).eval)) {
    const e = obj(r);
    add(`${String(e.benchmark)}.${String(e.split)}.${String(e.model)}`, e.metrics);
  }
  return out;
}

export function summarize(m: Manifest): RunSummary {
  const started = str(m.started_at) ?? null;
  const finished = str(m.finished_at) ?? null;
  const t0 = started ? Date.parse(started) : NaN;
  const t1 = finished ? Date.parse(finished) : NaN;
  const stages: Record<string, StageSummary> = {};
  for (const [name, s] of Object.entries(obj(m.stages))) {
    const st = obj(s);
    const counts: Record<string, number> = {};
    for (const [k, v] of Object.entries(obj(st.counts))) if (num(v) !== undefined) counts[k] = v as number;
    stages[name] = { status: str(st.status) ?? "unknown", ...(num(st.total) !== undefined ? { total: st.total as number } : {}), ...(num(st.seconds) !== undefined ? { seconds: st.seconds as number } : {}), counts };
  }
  const error = obj(m.error);
  return {
    id: String(m.run_id),
    status: str(m.status) ?? "unknown",
    started,
    finished,
    duration_s: Number.isFinite(t0) && Number.isFinite(t1) ? (t1 - t0) / 1000 : null,
    stages_done: Object.entries(stages).filter(([, s]) => s.status === "succeeded").map(([n]) => n),
    stages,
    pairs: num(obj(obj(m.outputs).dataset).pairs) ?? stages.responses?.counts.pairs ?? stages.train?.counts.pairs ?? null,
    metrics: metricsOf(m),
    ...(str(error.message) ? { error: `${String(error.code ?? "error")}: ${String(error.message)}` } : {}),
    ...(str(m.replay_of) ? { replay_of: m.replay_of } : {}),
  };
}

/** A number as a person reads it: 4 significant digits, no exponent for everyday sizes. */
export function fmtNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
}

export function fmtDuration(s: number | null): string {
  if (s === null) return "-";
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${Math.round(s % 60)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

/** The metrics a one-line listing shows: the training loss and reward accuracy, and each evaluation's accuracy and F1 of the trained models. */
export function headlineMetrics(metrics: Record<string, number>): [string, number][] {
  return Object.entries(metrics).filter(([k]) => /^train\.(.+\.)?(loss|rewards\/accuracies)$/.test(k) || (!k.startsWith("train.") && !/\.base\./.test(k) && /\.(accuracy|f1)$/.test(k)));
}

/** The lines of `orchestrate runs`: one per run, its columns aligned, the metrics last. */
export function runLines(runs: RunSummary[]): string[] {
  const rows = runs.map((s) => [s.id, s.status, s.started ?? "-", fmtDuration(s.duration_s), s.stages_done.join(",") || "-", `pairs=${s.pairs ?? "-"}`, headlineMetrics(s.metrics).map(([k, v]) => `${k}=${fmtNumber(v)}`).join(" ")]);
  const widths = rows.reduce((w, r) => r.map((c, i) => Math.max(w[i] ?? 0, c.length)), [] as number[]);
  return rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join("  ").trimEnd());
}

// ---- diff ------------------------------------------------------------------------------

export const DIFF_SECTIONS = ["run", "config", "workers", "stages", "hashes", "metrics"] as const;
export type DiffSection = (typeof DIFF_SECTIONS)[number];

export interface RunDifference {
  section: DiffSection;
  key: string;
  a: unknown;
  b: unknown;
}

/** Leaves of a JSON value as dotted paths (array items by index). */
export function flatten(value: unknown, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    if (entries.length === 0) out[prefix] = value;
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = value;
  return out;
}

function changed(section: DiffSection, a: Record<string, unknown>, b: Record<string, unknown>, prefix = ""): RunDifference[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).map((k) => ({ section, key: `${prefix}${k}`, a: a[k], b: b[k] }));
}

/** The file hashes a run produced, by path in the run directory: dataset files, the trainer's adapters (every train artifact) and the image records. */
function hashesOf(m: Manifest): Record<string, unknown> {
  const files: Record<string, unknown> = {};
  const outputs = obj(m.outputs);
  for (const f of arr(obj(outputs.dataset).files)) files[String(obj(f).path)] = obj(f).sha256;
  for (const a of arr(m.artifacts)) {
    const r = obj(a);
    if (r.stage === "train") files[String(r.path)] = r.sha256;
  }
  if (str(outputs.adapter_sha256) && !Object.values(files).includes(outputs.adapter_sha256)) files.adapter = outputs.adapter_sha256;
  return files;
}

/** Each run's kept images, path -> sha256 (read from its image records by the caller). */
export type KeptImageHashes = Record<string, string>;

/** How two runs differ, in the order a person looks: outcome, config, workers, stage counts, output hashes, metrics. */
export function diffRuns(a: Manifest, b: Manifest, kept: { a: KeptImageHashes; b: KeptImageHashes } = { a: {}, b: {} }): RunDifference[] {
  const sa = summarize(a);
  const sb = summarize(b);
  const out: RunDifference[] = [];
  out.push(...changed("run", { status: sa.status, error: sa.error, stages_done: sa.stages_done.join(",") }, { status: sb.status, error: sb.error, stages_done: sb.stages_done.join(",") }));
  out.push(...changed("config", flatten(obj(a.config).resolved), flatten(obj(b.config).resolved)));
  out.push(...changed("config", { "prompts sha256": obj(obj(a.inputs).prompts).sha256 }, { "prompts sha256": obj(obj(b.inputs).prompts).sha256 }));
  const wa = obj(a.workers);
  const wb = obj(b.workers);
  for (const name of [...new Set([...Object.keys(wa), ...Object.keys(wb)])]) {
    const fa = name in wa ? flatten(obj(wa[name]).fingerprint ?? {}) : {};
    const fb = name in wb ? flatten(obj(wb[name]).fingerprint ?? {}) : {};
    if (!(name in wa) || !(name in wb)) out.push({ section: "workers", key: name, a: name in wa ? "present" : undefined, b: name in wb ? "present" : undefined });
    else out.push(...changed("workers", fa, fb, `${name}.`));
  }
  const stageView = (s: RunSummary) => {
    const v: Record<string, unknown> = {};
    for (const [n, st] of Object.entries(s.stages)) {
      v[`${n}.status`] = st.status;
      if (st.total !== undefined) v[`${n}.total`] = st.total;
      for (const [k, c] of Object.entries(st.counts)) v[`${n}.${k}`] = c;
    }
    return v;
  };
  out.push(...changed("stages", stageView(sa), stageView(sb)));
  const ha = hashesOf(a);
  const hb = hashesOf(b);
  out.push(...changed("hashes", ha, hb));
  // Kept images are many: their differences are counted, the first few named.
  const images = changed("hashes", kept.a, kept.b);
  if (images.length > 0) {
    const total = new Set([...Object.keys(kept.a), ...Object.keys(kept.b)]).size;
    out.push({ section: "hashes", key: "kept images", a: `${images.length} of ${total} differ`, b: images.slice(0, 3).map((d) => d.key).join(", ") + (images.length > 3 ? ", ..." : "") });
  }
  out.push(...changed("metrics", sa.metrics, sb.metrics));
  return out;
}

const HEX64 = /^[0-9a-f]{64}$/;
function fmtValue(v: unknown): string {
  if (v === undefined) return "(none)";
  if (typeof v === "number") return fmtNumber(v);
  if (typeof v === "string") return HEX64.test(v) ? short(v) : v.includes(":") && HEX64.test(v.split(":").pop()!) ? `${v.slice(0, v.lastIndexOf(":") + 1)}${short(v.split(":").pop())}` : v;
  return JSON.stringify(v);
}

/** The text of `orchestrate diff`: one heading per section with differences, one line per difference. */
export function diffText(idA: string, idB: string, diffs: RunDifference[]): string {
  if (diffs.length === 0) return `${idA} and ${idB}: no differences in config, workers, stages, hashes or metrics\n`;
  const lines = [`${idA} -> ${idB}`];
  for (const section of DIFF_SECTIONS) {
    const these = diffs.filter((d) => d.section === section);
    if (these.length === 0) continue;
    lines.push(section);
    for (const d of these) {
      const delta = typeof d.a === "number" && typeof d.b === "number" ? ` (${d.b - d.a >= 0 ? "+" : ""}${fmtNumber(d.b - d.a)})` : "";
      lines.push(d.key === "kept images" ? `  kept images: ${String(d.a)} (${String(d.b)})` : `  ${d.key}: ${fmtValue(d.a)} -> ${fmtValue(d.b)}${delta}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

// ---- show ------------------------------------------------------------------------------

export interface WorkerSummary {
  name: string;
  kind: string;
  model: string;
  revision?: string;
  weights?: string;
  device?: string;
  environment?: string;
  replicas: number;
}

function workersOf(m: Manifest): WorkerSummary[] {
  const configured = obj(obj(obj(m.config).resolved).workers);
  return Object.entries(obj(m.workers)).map(([name, w]) => {
    const fp = obj(obj(w).fingerprint);
    const info = obj(obj(w).info);
    const spec = obj(obj(info.model).spec);
    const model = obj(fp.model);
    // A worker that never served has no Describe: its model as configured.
    const asConfigured = obj(obj(configured[name]).model);
    return {
      name,
      kind: String(obj(w).kind ?? fp.kind ?? ""),
      model: String(spec.id || spec.path || asConfigured.id || asConfigured.path || asConfigured.name || "-"),
      ...(str(model.resolvedRevision) || str(obj(info.model).resolvedRevision) ? { revision: str(model.resolvedRevision) ?? str(obj(info.model).resolvedRevision) } : {}),
      ...(str(model.weightsSha256) ? { weights: model.weightsSha256 as string } : {}),
      ...(str(fp.device) ? { device: fp.device as string } : {}),
      ...(str(fp.environment) ? { environment: fp.environment as string } : {}),
      replicas: num(obj(w).replicas) ?? 1,
    };
  });
}

/** What `show --json` prints: the summary, the workers and the output hashes. */
export function runDetail(m: Manifest): RunSummary & { config: { file?: string; sha256?: string; name?: string; seed?: number }; prompts?: string; workers: WorkerSummary[]; hashes: Record<string, unknown>; kept_images: number } {
  const cfg = obj(m.config);
  const resolved = obj(cfg.resolved);
  return {
    ...summarize(m),
    config: { file: str(cfg.file), sha256: str(cfg.sha256), name: str(resolved.name), seed: num(resolved.seed) },
    prompts: str(obj(obj(m.inputs).prompts).sha256),
    workers: workersOf(m),
    hashes: hashesOf(m),
    kept_images: num(obj(obj(obj(m.stages).images).counts).kept) ?? 0,
  };
}

/** `orchestrate show`: the manifest as a person reads it. */
export function showText(m: Manifest): string {
  const d = runDetail(m);
  const orch = obj(m.orchestrator);
  const lines = [
    `run ${d.id}: ${d.status}${d.replay_of ? ` (replay of ${d.replay_of})` : ""}`,
    `  started   ${d.started ?? "-"}, took ${fmtDuration(d.duration_s)}`,
    `  config    ${d.config.file ?? "-"} (sha256 ${short(d.config.sha256)}): name ${d.config.name ?? "-"}, seed ${d.config.seed ?? "-"}`,
    `  prompts   sha256 ${short(d.prompts)}`,
    `  by        orchestrator ${String(orch.version ?? "-")}${str(orch.gitCommit) ? ` (git ${short(orch.gitCommit)})` : ""}, node ${String(orch.node ?? "-")}`,
  ];
  if (d.error) lines.push(`  error     ${d.error}`);
  lines.push("workers");
  for (const w of d.workers) {
    lines.push(`  ${w.name}: ${w.kind} ${w.model}${w.revision ? `@${w.revision}` : ""}${w.weights ? ` weights ${short(w.weights)}` : ""}${w.device ? ` on ${w.device}` : ""}${w.replicas > 1 ? ` x${w.replicas}` : ""}${w.environment ? ` env ${fmtValue(w.environment)}` : ""}`);
  }
  lines.push("stages");
  for (const [name, s] of Object.entries(d.stages)) {
    const counts = Object.entries(s.counts).map(([k, v]) => `${k}=${v}`).join(" ");
    lines.push(`  ${name}: ${s.status}${s.seconds !== undefined ? ` in ${fmtDuration(s.seconds)}` : ""}${counts ? `: ${counts}` : ""}`);
  }
  const hashes = Object.entries(d.hashes);
  if (hashes.length > 0 || d.kept_images > 0 || d.pairs !== null) {
    lines.push("outputs");
    if (d.pairs !== null) lines.push(`  pairs: ${d.pairs}`);
    if (d.kept_images > 0) lines.push(`  kept images: ${d.kept_images}`);
    for (const [k, v] of hashes) lines.push(`  ${k}: sha256 ${short(v)}`);
  }
  const metrics = Object.entries(d.metrics);
  if (metrics.length > 0) {
    lines.push("metrics");
    // One line per source: train, or a benchmark split of one model.
    const groups = new Map<string, string[]>();
    for (const [k, v] of metrics) {
      const cut = k.startsWith("train.") ? (k.split("/")[0]!.split(".").length > 2 ? k.indexOf(".", 6) : 5) : k.split(".").slice(0, 3).join(".").length;
      const g = groups.get(k.slice(0, cut)) ?? [];
      g.push(`${k.slice(cut + 1)}=${fmtNumber(v)}`);
      groups.set(k.slice(0, cut), g);
    }
    for (const [g, values] of groups) lines.push(`  ${g}: ${values.join(" ")}`);
  }
  return `${lines.join("\n")}\n`;
}
