// Pure: a data-size sweep (`sweep: {train.data_size: [...], seeds: [...]}`): its points and
// each point's subset of the pairs. A seed orders the pairs once (by a hash of the seed and
// each pair's id, so the order never depends on the file's order); a point of size N takes
// the first N, so a smaller subset lies inside every larger one of the same seed.
import { createHash } from "node:crypto";

export interface SweepConfig {
  "train.data_size": number[];
  /** Default: the experiment's seed. */
  seeds?: number[];
}

export interface SweepPoint {
  /** The point's variant name, e.g. n2000-s1: its directory under train/ and its model in eval/. */
  name: string;
  size: number;
  seed: number;
}

export function pointName(size: number, seed: number): string {
  return `n${size}-s${seed}`;
}

/** The points in order: sizes ascending, each size's seeds in the order given (default: the experiment's seed). */
export function sweepPoints(sweep: SweepConfig, experimentSeed: number): SweepPoint[] {
  const sizes = [...new Set(sweep["train.data_size"])].sort((a, b) => a - b);
  const seeds = sweep.seeds ?? [experimentSeed];
  return sizes.flatMap((size) => seeds.map((seed) => ({ name: pointName(size, seed), size, seed })));
}

/** The largest size of a sweep. */
export function largestSize(sweep: SweepConfig): number {
  return Math.max(...sweep["train.data_size"]);
}

/** Why a sweep cannot run on `available` pairs (null if it can): a size above it; `what` says what the number counts. */
export function sizeProblem(sweep: SweepConfig, available: number, what = "pairs available"): string | null {
  const over = [...new Set(sweep["train.data_size"])].filter((n) => n > available).sort((a, b) => a - b);
  if (over.length === 0) return null;
  return `size${over.length > 1 ? "s" : ""} ${over.join(", ")} exceed${over.length > 1 ? "" : "s"} the ${available} ${what}`;
}

function rank(seed: number, id: string): string {
  return createHash("sha256").update(`pds-dpo/subset/v1\0${seed}\0${id}`).digest("hex");
}

/** The seed's order of the items (indices into ids): by a hash of seed and id, ties (equal ids) by position. */
export function seededOrder(ids: readonly string[], seed: number): number[] {
  const keyed = ids.map((id, i) => ({ i, key: rank(seed, id) }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i));
  return keyed.map((k) => k.i);
}

/** A point's subset: the first `size` items of its seed's order. Throws when there are fewer items. */
export function subsetOf<T>(items: readonly T[], idOf: (t: T) => string, point: Pick<SweepPoint, "size" | "seed">): T[] {
  if (point.size > items.length) throw new RangeError(`size ${point.size} exceeds the ${items.length} pairs available`);
  return seededOrder(items.map(idOf), point.seed)
    .slice(0, point.size)
    .map((i) => items[i]!);
}

/** Mean and spread (sample standard deviation; 0 for one value) of a point's metric over seeds. */
export function meanSpread(values: readonly number[]): { mean: number; spread: number; n: number } {
  const n = values.length;
  if (n === 0) return { mean: Number.NaN, spread: Number.NaN, n };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const spread = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, spread, n };
}
