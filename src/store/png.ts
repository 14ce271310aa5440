// Pure: decodes the 8-bit, non-interlaced PNGs the generators write (gray, gray+alpha, RGB,
// RGBA) to raw pixels, for replay's pixel tolerance. Chunk CRCs are not checked: the store's
// sha256 already vouches for the bytes.
import { inflateSync } from "node:zlib";
import { IntegrityError } from "../errors.js";

export interface Pixels {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

export function decodePng(png: Uint8Array): Pixels {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) throw new IntegrityError("not a PNG file");
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  for (let at = 8; at + 8 <= buf.length; ) {
    const length = buf.readUInt32BE(at);
    const type = buf.toString("latin1", at + 4, at + 8);
    const body = buf.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const depth = body[8]!;
      const color = body[9]!;
      const interlace = body[12]!;
      channels = CHANNELS[color] ?? 0;
      if (depth !== 8 || !channels || interlace !== 0) throw new IntegrityError(`unsupported PNG (bit depth ${depth}, color type ${color}, interlace ${interlace})`);
    } else if (type === "IDAT") {
      idat.push(body);
    } else if (type === "IEND") {
      break;
    }
    at += 12 + length;
  }
  if (!channels) throw new IntegrityError("PNG without a header");
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new IntegrityError("PNG data is truncated");
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[row + x - channels]! : 0;
      const b = y > 0 ? out[row - stride + x]! : 0;
      const c = x >= channels && y > 0 ? out[row - stride + x - channels]! : 0;
      const v = raw[src + x]!;
      const predicted = filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : filter === 4 ? paeth(a, b, c) : -1;
      if (predicted < 0) throw new IntegrityError(`bad PNG row filter ${filter}`);
      out[row + x] = (v + predicted) & 0xff;
    }
  }
  return { width, height, channels, data: out };
}

/** Largest absolute channel difference and PSNR (dB; Infinity when equal) of two images of one shape, or null when their shapes differ. */
export function pixelDistance(a: Pixels, b: Pixels): { maxDiff: number; psnr: number } | null {
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) return null;
  let max = 0;
  let sq = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i]! - b.data[i]!);
    if (d > max) max = d;
    sq += d * d;
  }
  const mse = sq / a.data.length;
  return { maxDiff: max, psnr: mse === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / mse) };
}
