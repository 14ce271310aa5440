// The train/benchmark overlap check: fingerprints (sha256, 64-bit dHash) of PNG and JPEG
// images, and the compare: a benchmark image planted among the training images is caught by
// its bytes, a slightly altered or re-encoded copy by its dHash, a different picture is not.
import { encode as encodeJpeg } from "jpeg-js";
import { describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { decodeImage, dHash, fingerprint, fingerprintFile, hamming } from "../../src/eval/image-hash.js";
import { DHASH_MAX_DISTANCE, findOverlaps } from "../../src/eval/overlap.js";
import { encodePng } from "../support/png.js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.js";

/** A smooth picture (gradients and a disc) that `seed` varies. */
function picture(seed: number, w = 64, h = 48): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  const cx = (seed * 17) % w;
  const cy = (seed * 29) % h;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const disc = (x - cx) ** 2 + (y - cy) ** 2 < 150 ? 120 : 0;
      rgb[i] = (x * (3 + seed) + disc) & 0xff;
      rgb[i + 1] = (y * (5 + (seed % 7)) + disc) & 0xff;
      rgb[i + 2] = ((x + y) * (seed % 5 + 1)) & 0xff;
    }
  }
  return rgb;
}

const png = (rgb: Uint8Array, w = 64, h = 48) => encodePng(w, h, rgb);
const jpeg = (rgb: Uint8Array, w = 64, h = 48) => {
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([rgb[i * 3]!, rgb[i * 3 + 1]!, rgb[i * 3 + 2]!, 255], i * 4);
  return encodeJpeg({ width: w, height: h, data: rgba }, 90).data;
};

describe("image fingerprints", () => {
  it("decodes PNG and JPEG to the same picture; dHash barely moves under JPEG re-encoding", () => {
    const rgb = picture(3);
    const a = decodeImage(png(rgb));
    const b = decodeImage(jpeg(rgb));
    expect([a.width, a.height, b.width, b.height]).toEqual([64, 48, 64, 48]);
    expect(hamming(dHash(a), dHash(b))).toBeLessThanOrEqual(DHASH_MAX_DISTANCE);
  });

  it("hamming counts differing bits of two 64-bit hashes", () => {
    expect(hamming("0000000000000000", "0000000000000000")).toBe(0);
    expect(hamming("0000000000000000", "ffffffffffffffff")).toBe(64);
    expect(hamming("00000000000000f1", "0000000000000000")).toBe(5);
  });

  it("a corrupt or foreign file is an IntegrityError naming what it is not", () => {
    expect(() => fingerprint(Buffer.from("GIF89a....."))).toThrow(new IntegrityError("neither a PNG nor a JPEG file"));
    const cut = jpeg(picture(1)).subarray(0, 40);
    expect(() => fingerprint(cut)).toThrow(IntegrityError);
    expect(() => fingerprint(png(picture(1)).subarray(0, 30))).toThrow(IntegrityError);
  });
});

describe("image files", () => {
  it("a missing or corrupt file is one line naming it; a cache keeps each dHash by the bytes' sha256", () => {
    const dir = tempDir();
    expect(() => fingerprintFile(join(dir, "none.png"), "benchmark pope image")).toThrow(new IntegrityError(`benchmark pope image ${join(dir, "none.png")}: not found`));
    writeFileSync(join(dir, "bad.png"), png(picture(1)).subarray(0, 60));
    expect(() => fingerprintFile(join(dir, "bad.png"), "training image")).toThrow(/^training image .*bad\.png: not a readable PNG/);
    writeFileSync(join(dir, "a.png"), png(picture(2)));
    const cache = join(dir, "cache");
    const fp = fingerprintFile(join(dir, "a.png"), "x", cache);
    expect(fp).toEqual(fingerprint(png(picture(2))));
    expect(readFileSync(join(cache, fp.sha256), "utf8")).toBe(`${fp.dhash}\n`);
    // The cached hash is what a second look returns (here a planted one, to show it is read).
    writeFileSync(join(cache, fp.sha256), "00000000000000ff\n");
    expect(fingerprintFile(join(dir, "a.png"), "x", cache)).toEqual({ sha256: fp.sha256, dhash: "00000000000000ff" });
  });
});

describe("overlap check", () => {
  const training = [1, 2, 3, 4, 5].map((s) => ({ path: `images/p${s}.png`, fp: fingerprint(png(picture(s))) }));

  it("a benchmark image planted into the training set is caught by sha256", () => {
    const planted = png(picture(4));
    const r = findOverlaps([{ name: "pope", images: [{ path: "COCO_1.png", fp: fingerprint(planted) }, { path: "COCO_2.png", fp: fingerprint(png(picture(11))) }] }], training);
    expect(r).toEqual({ benchmark_images: 2, training_images: 5, dhash_max_distance: DHASH_MAX_DISTANCE, overlaps: [{ benchmark: "pope", image: "COCO_1.png", training_image: "images/p4.png", match: "sha256", distance: 0 }] });
  });

  it("a slightly altered copy (a few pixels changed, brightness shifted, re-encoded as JPEG) is caught by the perceptual hash", () => {
    const altered = picture(2);
    for (let i = 0; i < 30; i++) altered[(i * 97) % altered.length] = altered[(i * 97) % altered.length]! ^ 0x40;
    for (let i = 0; i < altered.length; i++) altered[i] = Math.min(255, altered[i]! + 6);
    const r = findOverlaps([{ name: "amber", images: [{ path: "AMBER_7.jpg", fp: fingerprint(jpeg(altered)) }] }], training);
    expect(r.overlaps).toHaveLength(1);
    expect(r.overlaps[0]).toMatchObject({ benchmark: "amber", image: "AMBER_7.jpg", training_image: "images/p2.png", match: "dhash" });
    expect(r.overlaps[0]!.distance).toBeLessThanOrEqual(DHASH_MAX_DISTANCE);
  });

  it("different pictures are not overlaps; the bucket search agrees with comparing every pair", () => {
    const bench = [10, 11, 12, 13, 14, 15, 16, 17].map((s) => ({ path: `b${s}.png`, fp: fingerprint(png(picture(s))) }));
    expect(findOverlaps([{ name: "pope", images: bench }], training).overlaps).toEqual([]);
    const all = [...bench, ...training];
    for (const a of all) for (const b of all) if (a !== b) expect(findOverlaps([{ name: "x", images: [a] }], [b], 7).overlaps.length > 0).toBe(hamming(a.fp.dhash, b.fp.dhash) <= 7);
    expect(() => findOverlaps([], [], 8)).toThrow(RangeError);
  });
});
