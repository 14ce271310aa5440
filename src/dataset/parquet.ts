// A parquet file's rows as plain JSON-like values (hyparquet, pure JS): TRL preference data
// as `datasets` saves it (prompt, chosen, rejected, images). int64 values become numbers. An
// image given as a struct ({path, bytes}, the Image feature) with embedded bytes is kept by
// its bytes (a Hub dataset's `path` is only the original file name), named
// "embedded:<sha256>" among the pair's images and held in ReadResult.embedded; a struct with
// a path and no bytes becomes its path.
import { readFileSync } from "node:fs";
import { parquetReadObjects } from "hyparquet";
import { sha256 } from "../store/cas.js";
import { readPairRows, type DatasetFormat, type ReadResult } from "./formats.js";

/** How a pair names an image embedded in its parquet file. */
export const EMBEDDED = "embedded:";

/** Pure: an image file's extension from its first bytes ("" when not PNG, JPEG, WebP or GIF). */
export function imageExtension(bytes: Uint8Array): string {
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes[0] === 0x89 && ascii(1, 4) === "PNG") return ".png";
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return ".jpg";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return ".webp";
  if (ascii(0, 4) === "GIF8") return ".gif";
  return "";
}

/** Whether a file is parquet: "PAR1" at its start. */
export function isParquet(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && bytes[0] === 0x50 && bytes[1] === 0x41 && bytes[2] === 0x52 && bytes[3] === 0x31;
}

export function isParquetFile(file: string): boolean {
  try {
    return isParquet(readFileSync(file).subarray(0, 8));
  } catch {
    return false;
  }
}

/** Pure: a decoded value made JSON-like (bigints as numbers, bytes kept as Uint8Array for imagePaths). */
function plain(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Uint8Array || v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, plain(x)]));
}

/** Pure: one row's `images` as names: embedded bytes as "embedded:<sha256>" (kept in `embedded`), else the struct's path. */
function imagePaths(images: unknown, where: string, issues: string[], embedded: Map<string, Uint8Array>): unknown {
  if (!Array.isArray(images)) return images;
  return images.map((img, k) => {
    if (img === null || typeof img !== "object" || Array.isArray(img)) return img;
    const { path, bytes } = img as { path?: unknown; bytes?: unknown };
    if (bytes instanceof Uint8Array && bytes.length > 0) {
      if (!imageExtension(bytes)) issues.push(`${where}: images[${k}]: embedded bytes are not a PNG, JPEG, WebP or GIF image`);
      const name = `${EMBEDDED}${sha256(bytes)}`;
      embedded.set(name, bytes);
      return name;
    }
    if (typeof path === "string" && path !== "") return path;
    return img;
  });
}

/** Every row of a parquet file, named "row N" (from 1); one issue when the file cannot be read as parquet. */
export async function parquetRows(file: string): Promise<{ rows: { where: string; value: unknown }[]; issues: string[]; embedded: Map<string, Uint8Array> }> {
  const bytes = readFileSync(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let objects: Record<string, unknown>[];
  try {
    // utf8: false keeps unannotated binary columns (image bytes) as bytes; STRING columns stay strings.
    objects = (await parquetReadObjects({ file: buffer, utf8: false })) as Record<string, unknown>[];
  } catch (e) {
    return { rows: [], issues: [`not a readable parquet file: ${(e as Error).message}`], embedded: new Map() };
  }
  const issues: string[] = [];
  const embedded = new Map<string, Uint8Array>();
  const rows = objects.map((o, i) => {
    const where = `row ${i + 1}`;
    const value = plain(o) as Record<string, unknown>;
    if ("images" in value) value.images = imagePaths(value.images, where, issues, embedded);
    return { where, value };
  });
  return { rows, issues, embedded };
}

/** A parquet file's pairs, each row read as `format` reads a row; a file that cannot be read is its one problem. */
export async function readParquetPairs(file: string, format: DatasetFormat): Promise<ReadResult> {
  const { rows, issues, embedded } = await parquetRows(file);
  if (rows.length === 0 && issues.length > 0) return { pairs: [], where: [], issues };
  const read = readPairRows(format, rows);
  return { ...read, issues: [...issues, ...read.issues], ...(embedded.size > 0 ? { embedded } : {}) };
}
