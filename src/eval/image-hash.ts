// Image fingerprints for the train/benchmark overlap check: sha256 of the bytes (the same
// file) and a 64-bit difference hash (dHash) of the pixels (the same picture re-encoded,
// resized or slightly altered). Decoding: the project's PNG decoder, jpeg-js for JPEG.
import { decode as decodeJpeg } from "jpeg-js";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { IntegrityError } from "../errors.js";
import { decodePng, type Pixels } from "../store/png.js";
import { writeFileAtomic } from "../store/run-dir.js";

export interface ImageFingerprint {
  sha256: string;
  /** 16 hex digits: 64 bits of the difference hash. */
  dhash: string;
}

/** Pure: pixels of a PNG or JPEG by its magic bytes. */
export function decodeImage(bytes: Uint8Array): Pixels {
  if (bytes[0] === 0x89 && bytes[1] === 0x50) {
    try {
      return decodePng(bytes);
    } catch (e) {
      // A cut or damaged zlib stream throws zlib's own error.
      throw e instanceof IntegrityError ? e : new IntegrityError(`not a readable PNG (${(e as Error).message})`);
    }
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    try {
      // A hostile JPEG cannot claim more than 100 megapixels or 1 GB of decoder memory.
      const img = decodeJpeg(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: 100, maxMemoryUsageInMB: 1024 });
      return { width: img.width, height: img.height, channels: 3, data: img.data };
    } catch (e) {
      throw new IntegrityError(`not a readable JPEG (${String((e as Error).message ?? e).split("\n")[0]})`);
    }
  }
  throw new IntegrityError("neither a PNG nor a JPEG file");
}

/** Pure: the luminance of pixel (x, y) (BT.601 weights; gray images as they are; alpha ignored). */
function luma(p: Pixels, x: number, y: number): number {
  const i = (y * p.width + x) * p.channels;
  if (p.channels < 3) return p.data[i]!;
  return 0.299 * p.data[i]! + 0.587 * p.data[i + 1]! + 0.114 * p.data[i + 2]!;
}

/**
 * Pure: dHash: the image as 9x8 gray cells (box-averaged), one bit per horizontally adjacent
 * pair (left brighter than right), row by row: 64 bits as 16 hex digits. Re-encoding, resizing
 * and small edits change few bits; a different picture about half.
 */
export function dHash(p: Pixels): string {
  if (p.width === 0 || p.height === 0) throw new IntegrityError("an image without pixels");
  const cells: number[] = [];
  for (let cy = 0; cy < 8; cy++) {
    const y0 = Math.floor((cy * p.height) / 8);
    const y1 = Math.max(y0 + 1, Math.floor(((cy + 1) * p.height) / 8));
    for (let cx = 0; cx < 9; cx++) {
      const x0 = Math.floor((cx * p.width) / 9);
      const x1 = Math.max(x0 + 1, Math.floor(((cx + 1) * p.width) / 9));
      let sum = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += luma(p, Math.min(x, p.width - 1), Math.min(y, p.height - 1));
      cells.push(sum / ((y1 - y0) * (x1 - x0)));
    }
  }
  let bits = 0n;
  for (let cy = 0; cy < 8; cy++) for (let cx = 0; cx < 8; cx++) bits = (bits << 1n) | (cells[cy * 9 + cx]! > cells[cy * 9 + cx + 1]! ? 1n : 0n);
  return bits.toString(16).padStart(16, "0");
}

/** Pure: bits that differ between two 64-bit hashes. */
export function hamming(a: string, b: string): number {
  let x = BigInt(`0x${a}`) ^ BigInt(`0x${b}`);
  let n = 0;
  for (; x; x >>= 1n) n += Number(x & 1n);
  return n;
}

/** Pure: the fingerprint of an image's bytes; throws IntegrityError for one that cannot be decoded. */
export function fingerprint(bytes: Uint8Array): ImageFingerprint {
  return { sha256: createHash("sha256").update(bytes).digest("hex"), dhash: dHash(decodeImage(bytes)) };
}

/**
 * An image file's fingerprint; a missing or corrupt file is one line naming it
 * (IntegrityError). With a cache directory, a dHash is kept by the bytes' sha256
 * (<cache>/<sha256>), so the images of a sweep, a resume or the next run decode once.
 */
export function fingerprintFile(path: string, what: string, cacheDir?: string): ImageFingerprint {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new IntegrityError(`${what} ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : `cannot read (${(e as NodeJS.ErrnoException).code})`}`);
  }
  const sha = createHash("sha256").update(bytes).digest("hex");
  const cached = cacheDir ? join(cacheDir, sha) : undefined;
  if (cached && existsSync(cached)) {
    const dhash = readFileSync(cached, "utf8").trim();
    if (/^[0-9a-f]{16}$/.test(dhash)) return { sha256: sha, dhash };
  }
  let fp: ImageFingerprint;
  try {
    fp = { sha256: sha, dhash: dHash(decodeImage(bytes)) };
  } catch (e) {
    throw new IntegrityError(`${what} ${path}: ${(e as Error).message}`);
  }
  if (cached) {
    mkdirSync(cacheDir!, { recursive: true });
    writeFileAtomic(cached, `${fp.dhash}\n`);
  }
  return fp;
}
