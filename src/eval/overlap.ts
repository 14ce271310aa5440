// Pure: the train/benchmark overlap check. A benchmark image overlaps a training image when
// their bytes are the same (sha256) or their pictures are (64-bit dHash within
// DHASH_MAX_DISTANCE bits). Evaluating on an image the model was trained on measures
// memorisation, not hallucination, so the evaluate stage refuses it unless allow_overlap.
import { hamming, type ImageFingerprint } from "./image-hash.js";

/**
 * Most differing dHash bits of two images taken for one picture. Re-encoding or a small
 * edit flips a few of the 64 bits; two unrelated pictures differ in about 32 (the chance
 * that two independent hashes are within 6 bits is under 1 in 10^10). Below 8, so the
 * byte-bucket search below finds every pair (pigeonhole: 8 bytes, at most 7 differ).
 */
export const DHASH_MAX_DISTANCE = 6;

export interface HashedImage {
  /** As the report names it: a path relative to the run directory or the benchmark's image root. */
  path: string;
  fp: ImageFingerprint;
}

export interface Overlap {
  benchmark: string;
  image: string;
  training_image: string;
  /** sha256: the same file; dhash: the same picture by its perceptual hash. */
  match: "sha256" | "dhash";
  /** dHash bits that differ (0 for a sha256 match). */
  distance: number;
}

export interface OverlapRecord {
  benchmark_images: number;
  training_images: number;
  dhash_max_distance: number;
  overlaps: Overlap[];
}

/** Every (benchmark image, training image) pair that overlaps; each benchmark image once per training image. */
export function findOverlaps(benchmark: { name: string; images: HashedImage[] }[], training: HashedImage[], maxDistance = DHASH_MAX_DISTANCE): OverlapRecord {
  if (maxDistance >= 8) throw new RangeError("the byte-bucket search finds distances up to 7");
  const bySha = new Map<string, HashedImage[]>();
  // Two hashes within 7 bits agree in at least one of their 8 bytes: bucket by (byte index, value).
  const buckets = new Map<string, number[]>();
  training.forEach((t, i) => {
    (bySha.get(t.fp.sha256) ?? bySha.set(t.fp.sha256, []).get(t.fp.sha256)!).push(t);
    for (let b = 0; b < 8; b++) {
      const key = `${b}:${t.fp.dhash.slice(2 * b, 2 * b + 2)}`;
      (buckets.get(key) ?? buckets.set(key, []).get(key)!).push(i);
    }
  });
  const overlaps: Overlap[] = [];
  let count = 0;
  for (const bench of benchmark) {
    for (const img of bench.images) {
      count++;
      const same = new Set<HashedImage>(bySha.get(img.fp.sha256) ?? []);
      for (const t of same) overlaps.push({ benchmark: bench.name, image: img.path, training_image: t.path, match: "sha256", distance: 0 });
      const seen = new Set<number>();
      for (let b = 0; b < 8; b++) {
        for (const i of buckets.get(`${b}:${img.fp.dhash.slice(2 * b, 2 * b + 2)}`) ?? []) {
          if (seen.has(i)) continue;
          seen.add(i);
          const t = training[i]!;
          if (same.has(t)) continue;
          const d = hamming(img.fp.dhash, t.fp.dhash);
          if (d <= maxDistance) overlaps.push({ benchmark: bench.name, image: img.path, training_image: t.path, match: "dhash", distance: d });
        }
      }
    }
  }
  return { benchmark_images: count, training_images: training.length, dhash_max_distance: maxDistance, overlaps };
}
