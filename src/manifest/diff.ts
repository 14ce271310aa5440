// Pure: how two values of a run and its replay are compared, and the tolerances for it.
// Each stage's replay comparison is built from these.

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

/** Whether any tolerance is set: derived files (dataset, adapter) are then not compared by hash. */
export function tolerant(tol: Tolerance): boolean {
  return Object.values(tol).some((v) => v > 0);
}

/** How far apart two images (by sha256) are; null when they cannot be compared (missing, other shape). */
export type ImageDistance = (shaBefore: string, shaAfter: string) => { maxDiff: number; psnr: number } | null;

export interface CompareInputs {
  texts?: { before: Map<string, string>; after: Map<string, string> };
  /** The two runs' directories, where their records are (null: the original's is not here). */
  runDirs?: { before: string | null; after: string };
  images?: ImageDistance;
}

export interface Difference {
  stage: string;
  item: string;
  what: string;
}

export const short = (h: unknown) => (typeof h === "string" ? h.slice(0, 12) : String(h));

export function scoreDiff(a: unknown, b: unknown, tol: number): string | null {
  if (a === b) return null;
  if (typeof a !== "number" || typeof b !== "number") return `score ${String(a)} vs ${String(b)}`;
  const d = Math.abs(a - b);
  return d > tol ? `score ${a} vs ${b} (delta ${d.toExponential(2)})` : null;
}

/** First word where two texts part, for a readable text difference. */
export function textDiff(a: string, b: string): string {
  const x = a.split(/\s+/);
  const y = b.split(/\s+/);
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return `text differs at word ${i + 1}: '${x[i] ?? ""}' vs '${y[i] ?? ""}'`;
}

/** Whether two different image files are equal within the pixel tolerance; a reason when not. */
export function imageDiff(shaB: unknown, shaA: unknown, tol: Tolerance, distance?: ImageDistance): string | null {
  const what = `image sha256 ${short(shaB)} vs ${short(shaA)}`;
  if ((tol.pixel === 0 && tol.psnr === 0) || typeof shaB !== "string" || typeof shaA !== "string") return what;
  const d = distance?.(shaB, shaA);
  if (!d) return `${what} (the images cannot be compared pixel by pixel)`;
  const within = (tol.pixel === 0 || d.maxDiff <= tol.pixel) && (tol.psnr === 0 || d.psnr >= tol.psnr);
  return within ? null : `${what} (max pixel difference ${d.maxDiff}, PSNR ${d.psnr.toFixed(1)} dB)`;
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
