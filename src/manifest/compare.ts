// Pure: where a replay differs from the run it replays. Stages are compared in order and
// the first difference is reported with its stage, item and how it differs.

export interface Tolerance {
  /** Largest absolute difference of a score (image or response) still counted equal. */
  score: number;
  /** Largest relative difference of a training loss still counted equal. */
  loss: number;
  /** Largest absolute difference of an eval metric still counted equal. */
  metric: number;
  /** Largest absolute 8-bit channel difference of two images still counted equal (0: same bytes). */
  pixel: number;
  /** Smallest PSNR (dB) of two images still counted equal (0: not used). */
  psnr: number;
}

export const EXACT: Tolerance = { score: 0, loss: 0, metric: 0, pixel: 0, psnr: 0 };

/** How far apart two images (by sha256) are; null when they cannot be compared (missing, other shape). */
export type ImageDistance = (shaBefore: string, shaAfter: string) => { maxDiff: number; psnr: number } | null;

export interface CompareInputs {
  texts?: { before: Map<string, string>; after: Map<string, string> };
  images?: ImageDistance;
}

export interface Difference {
  stage: string;
  item: string;
  what: string;
}

type Json = Record<string, unknown>;
const obj = (x: unknown): Json => (x && typeof x === "object" ? (x as Json) : {});
const list = (x: unknown): Json[] => (Array.isArray(x) ? (x as Json[]) : []);
const short = (h: unknown) => (typeof h === "string" ? h.slice(0, 12) : String(h));

function scoreDiff(a: unknown, b: unknown, tol: number): string | null {
  if (a === b) return null;
  if (typeof a !== "number" || typeof b !== "number") return `score ${String(a)} vs ${String(b)}`;
  const d = Math.abs(a - b);
  return d > tol ? `score ${a} vs ${b} (delta ${d.toExponential(2)})` : null;
}

/** First word where two texts part, for a readable text difference. */
function textDiff(a: string, b: string): string {
  const x = a.split(/\s+/);
  const y = b.split(/\s+/);
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return `text differs at word ${i + 1}: '${x[i] ?? ""}' vs '${y[i] ?? ""}'`;
}

export function firstDifference(before: Json, after: Json, tol: Tolerance = EXACT, inputs: CompareInputs = {}): Difference | null {
  const sb = obj(before.stages);
  const sa = obj(after.stages);
  for (const stage of ["images", "responses", "train", "evaluate"]) {
    if (!sb[stage]) continue;
    if (!sa[stage]) return { stage, item: "-", what: "the stage did not run in the replay" };
    if (obj(sb[stage]).status !== obj(sa[stage]).status) return { stage, item: "-", what: `status ${String(obj(sb[stage]).status)} vs ${String(obj(sa[stage]).status)}` };
    const d = compareStage(stage, obj(sb[stage]), obj(sa[stage]), tol, inputs);
    if (d) return d;
  }
  // Under a tolerance the derived files differ whenever an input did within it (the dataset
  // names image hashes): their items were compared above.
  if (Object.values(tol).some((v) => v > 0)) return null;
  const ob = obj(before.outputs);
  const oa = obj(after.outputs);
  const db = obj(ob.dataset).sha256;
  const da = obj(oa.dataset).sha256;
  if (db !== da) return { stage: "responses", item: "dataset/pairs.jsonl", what: `sha256 ${short(db)} vs ${short(da)}` };
  if (ob.adapter_sha256 !== oa.adapter_sha256) return { stage: "train", item: "adapter", what: `sha256 ${short(ob.adapter_sha256)} vs ${short(oa.adapter_sha256)}` };
  return null;
}

/** Whether two different image files are equal within the pixel tolerance; a reason when not. */
function imageDiff(shaB: unknown, shaA: unknown, tol: Tolerance, distance?: ImageDistance): string | null {
  const what = `image sha256 ${short(shaB)} vs ${short(shaA)}`;
  if ((tol.pixel === 0 && tol.psnr === 0) || typeof shaB !== "string" || typeof shaA !== "string") return what;
  const d = distance?.(shaB, shaA);
  if (!d) return `${what} (the images cannot be compared pixel by pixel)`;
  const within = (tol.pixel === 0 || d.maxDiff <= tol.pixel) && (tol.psnr === 0 || d.psnr >= tol.psnr);
  return within ? null : `${what} (max pixel difference ${d.maxDiff}, PSNR ${d.psnr.toFixed(1)} dB)`;
}

function compareStage(stage: string, b: Json, a: Json, tol: Tolerance, inputs: CompareInputs): Difference | null {
  const { texts } = inputs;
  // Outputs first (image bytes, answer texts), then the scores of them: a changed output
  // is the cause, changed scores of its batch-mates only follow from it.
  if (stage === "images") {
    const after = new Map(list(a.prompts).flatMap((p) => list(p.candidates).map((c) => [String(c.id), c] as const)));
    const candidates = list(b.prompts).flatMap((p) => list(p.candidates));
    for (const c of candidates) {
      const r = after.get(String(c.id));
      if (!r) return { stage, item: String(c.id), what: "missing from the replay" };
      if (c.sha256 !== r.sha256) {
        const d = imageDiff(c.sha256, r.sha256, tol, inputs.images);
        if (d) return { stage, item: String(c.id), what: d };
      }
    }
    for (const c of candidates) {
      const s = scoreDiff(c.score, after.get(String(c.id))!.score, tol.score);
      if (s) return { stage, item: String(c.id), what: s };
    }
    for (const p of list(b.prompts)) {
      const kept = list(a.prompts).find((q) => q.id === p.id);
      if (obj(p.kept).id !== obj(kept?.kept).id) return { stage, item: String(p.id), what: `kept ${String(obj(p.kept).id)} vs ${String(obj(kept?.kept).id)}` };
    }
  }
  if (stage === "responses") {
    const after = new Map(list(a.answers).map((x) => [String(x.id), x] as const));
    for (const x of list(b.answers)) {
      const id = String(x.id);
      const r = after.get(id);
      if (!r) return { stage, item: id, what: "missing from the replay" };
      if (x.text_sha256 !== r.text_sha256) {
        const tb = texts?.before.get(id);
        const ta = texts?.after.get(id);
        return { stage, item: id, what: tb !== undefined && ta !== undefined ? textDiff(tb, ta) : `text sha256 ${short(x.text_sha256)} vs ${short(r.text_sha256)}` };
      }
    }
    for (const x of list(b.answers)) {
      for (const [k, v] of Object.entries(obj(x.scores))) {
        const s = scoreDiff(v, obj(after.get(String(x.id))!.scores)[k], tol.score);
        if (s) return { stage, item: `${String(x.id)} (${k})`, what: s };
      }
    }
  }
  if (stage === "train") {
    const lb = obj(b.final_metrics).loss;
    const la = obj(a.final_metrics).loss;
    if (typeof lb === "number" && typeof la === "number" && Math.abs(lb - la) > tol.loss * Math.max(Math.abs(lb), 1e-12)) {
      return { stage, item: `step ${String(b.steps)}`, what: `loss ${lb} vs ${la}` };
    }
    if (obj(b.adapter).sha256 !== obj(a.adapter).sha256 && tol.loss === 0) return { stage, item: "adapter", what: `sha256 ${short(obj(b.adapter).sha256)} vs ${short(obj(a.adapter).sha256)}` };
  }
  if (stage === "evaluate") {
    const after = list(a.results);
    for (const r of list(b.results)) {
      const m = after.find((x) => x.benchmark === r.benchmark && x.split === r.split && x.model === r.model);
      const item = `${String(r.benchmark)}/${String(r.split)}/${String(r.model)}`;
      if (!m) return { stage, item, what: "missing from the replay" };
      for (const [k, v] of Object.entries(obj(r.metrics))) {
        const w = obj(m.metrics)[k];
        if (typeof v === "number" && typeof w === "number" ? Math.abs(v - w) > tol.metric : v !== w) return { stage, item, what: `${k} ${String(v)} vs ${String(w)}` };
      }
    }
  }
  return null;
}

/** What a replay cannot be pinned to: another resolved revision or image digest. */
export function fingerprintMismatch(before: Json, after: Json): string | null {
  const wb = obj(before.workers);
  const wa = obj(after.workers);
  for (const [name, w] of Object.entries(wb)) {
    const infoB = obj(obj(w).info);
    const infoA = obj(obj(wa[name]).info);
    const revB = obj(infoB.model).resolvedRevision;
    const revA = obj(infoA.model).resolvedRevision;
    if (revB !== revA) return `worker '${name}': model revision ${String(revB)} is pinned but ${String(revA)} was loaded`;
    const digB = obj(obj(w).runtime).image_digest;
    const digA = obj(obj(wa[name]).runtime).image_digest;
    if (digB !== digA) return `worker '${name}': image digest ${String(digB)} is pinned but ${String(digA)} ran`;
  }
  return null;
}

export function parseTolerance(spec: string | undefined): Tolerance {
  const t = { ...EXACT };
  for (const part of (spec ?? "").split(",").filter(Boolean)) {
    const [k, v] = part.split("=");
    const n = Number(v);
    if (!(k === "score" || k === "loss" || k === "metric" || k === "pixel" || k === "psnr") || !Number.isFinite(n) || n < 0) {
      throw new Error(`bad tolerance '${part}': use score=, loss=, metric=, pixel= or psnr= with a number >= 0`);
    }
    t[k] = n;
  }
  return t;
}
