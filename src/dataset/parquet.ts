// A parquet file's rows as plain JSON-like values (hyparquet, pure JS): TRL preference data
// as `datasets` saves it (prompt, chosen, rejected, images). int64 values become numbers and
// an image given as a struct ({path, bytes}, the Image feature) becomes its path; embedded
// image bytes are refused by name, as the pairs name image files.
import { readFileSync } from "node:fs";
import { parquetReadObjects } from "hyparquet";
import { readPairRows, type DatasetFormat, type ReadResult } from "./formats.js";

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

/** Pure: a decoded value made JSON-like (bigints as numbers, bytes kept as Uint8Array for the caller to refuse). */
function plain(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Uint8Array || v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, plain(x)]));
}

/** Pure: one row's `images` as paths: an Image struct gives its path; embedded bytes without a path are a problem. */
function imagePaths(images: unknown, where: string, issues: string[]): unknown {
  if (!Array.isArray(images)) return images;
  return images.map((img, k) => {
    if (img === null || typeof img !== "object" || Array.isArray(img)) return img;
    const { path, bytes } = img as { path?: unknown; bytes?: unknown };
    if (typeof path === "string" && path !== "") return path;
    if (bytes instanceof Uint8Array && bytes.length > 0) issues.push(`${where}: images[${k}]: embedded image bytes without a path; save the images as files and give their paths`);
    return img;
  });
}

/** Every row of a parquet file, named "row N" (from 1); one issue when the file cannot be read as parquet. */
export async function parquetRows(file: string): Promise<{ rows: { where: string; value: unknown }[]; issues: string[] }> {
  const bytes = readFileSync(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let objects: Record<string, unknown>[];
  try {
    objects = (await parquetReadObjects({ file: buffer })) as Record<string, unknown>[];
  } catch (e) {
    return { rows: [], issues: [`not a readable parquet file: ${(e as Error).message}`] };
  }
  const issues: string[] = [];
  const rows = objects.map((o, i) => {
    const where = `row ${i + 1}`;
    const value = plain(o) as Record<string, unknown>;
    if ("images" in value) value.images = imagePaths(value.images, where, issues);
    return { where, value };
  });
  return { rows, issues };
}

/** A parquet file's pairs, each row read as `format` reads a row; a file that cannot be read is its one problem. */
export async function readParquetPairs(file: string, format: DatasetFormat): Promise<ReadResult> {
  const { rows, issues } = await parquetRows(file);
  if (rows.length === 0 && issues.length > 0) return { pairs: [], where: [], issues };
  const read = readPairRows(format, rows);
  return { ...read, issues: [...issues, ...read.issues] };
}
