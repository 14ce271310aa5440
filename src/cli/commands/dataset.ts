// `orchestrate dataset convert` and `orchestrate prompts import`: preference datasets and
// prompt files in and out. Problems are ConfigError issues (one a line, the first 20 and a
// count, exit 2); output files are written whole or not at all (temp file, then rename).
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { llamaFactoryDatasetInfo, readPairs, unwritable, writePairs, type DatasetFormat, type PreferencePair, type ReadResult } from "../../dataset/formats.js";
import { EMBEDDED, imageExtension, isParquetFile, readParquetPairs } from "../../dataset/parquet.js";
import { promptsFromReleaseFiles, promptsJsonl } from "../../dataset/prompts-import.js";
import { writeFileAtomic } from "../../store/run-dir.js";
import { ConfigError, UsageError } from "../../errors.js";
import type { Output } from "../output.js";

function writeAtomic(path: string, content: string | Uint8Array): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileAtomic(path, content);
}

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${flag}${path}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "a directory, not a file" : (e as Error).message}`);
  }
}

const isUrl = (p: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(p);

/** A path with "/" separators (datasets are read on any OS). */
const posix = (p: string) => p.split(sep).join("/");

/** Missing images, and the pairs' image paths made relative to the output file's directory; images embedded in the input become files under images/ there (`files`, written once the input has no problem). */
function placeImages(
  pairs: PreferencePair[],
  where: string[],
  base: string,
  outDir: string,
  baseName: string,
  embedded = new Map<string, Uint8Array>(),
): { pairs: PreferencePair[]; issues: string[]; files: Map<string, Uint8Array> } {
  const issues: string[] = [];
  const files = new Map<string, Uint8Array>();
  const placed = pairs.map((p, i) => {
    const images = p.images.map((img, k) => {
      if (isUrl(img)) return img;
      const bytes = embedded.get(img);
      if (bytes) {
        const rel = `images/${img.slice(EMBEDDED.length, EMBEDDED.length + 16)}${imageExtension(bytes)}`;
        files.set(join(outDir, rel), bytes);
        return rel;
      }
      const abs = isAbsolute(img) ? img : resolve(base, img);
      if (!existsSync(abs)) issues.push(`${where[i]}: images[${k}]: ${img}: no such file under ${baseName}`);
      return isAbsolute(img) ? img : posix(relative(outDir, abs)) || ".";
    });
    return { ...p, images };
  });
  return { pairs: placed, issues, files };
}

export interface ConvertCommand {
  input: string;
  from: DatasetFormat;
  to: DatasetFormat;
  out: string;
  imagesFrom?: string;
}

/** The input's pairs: its text in its format, or TRL pairs in a parquet file. */
async function readInput(cmd: ConvertCommand): Promise<ReadResult> {
  if (!isParquetFile(cmd.input)) return readPairs(cmd.from, readText(cmd.input, ""));
  if (cmd.from !== "trl") throw new UsageError(`${cmd.input}: a parquet file: only --from trl reads parquet`);
  return readParquetPairs(cmd.input, "trl");
}

export async function datasetConvertCommand(cmd: ConvertCommand, out: Output): Promise<number> {
  const read = await readInput(cmd);
  if (cmd.imagesFrom !== undefined && !(existsSync(cmd.imagesFrom) && statSync(cmd.imagesFrom).isDirectory())) throw new UsageError(`--images-from ${cmd.imagesFrom}: not a directory`);
  const base = resolve(cmd.imagesFrom ?? dirname(cmd.input));
  const outDir = dirname(resolve(cmd.out));
  const placed = placeImages(read.pairs, read.where, base, outDir, cmd.imagesFrom ?? `${dirname(cmd.input)}/`, read.embedded);
  const issues = [...read.issues, ...placed.issues, ...unwritable(cmd.to, read.pairs, read.where)];
  // A run's dataset/ files name images relative to the run directory, one level up.
  if (cmd.imagesFrom === undefined && placed.issues.length > 0 && placed.issues.length === read.pairs.reduce((n, p) => n + p.images.filter((i) => !isUrl(i) && !isAbsolute(i)).length, 0)) {
    const parent = dirname(base);
    if (read.pairs.every((p) => p.images.every((i) => isUrl(i) || isAbsolute(i) || existsSync(resolve(parent, i))))) issues.push(`every image is there under ${parent}: pass --images-from ${parent}`);
  }
  if (issues.length > 0) throw new ConfigError(issues.map((message) => ({ path: cmd.input, message })));

  let info: { path: string; entries: Record<string, unknown>; name: string } | undefined;
  if (cmd.to === "llama-factory") {
    // LLaMA-Factory finds a dataset through dataset_info.json in its dataset_dir: register the file beside it.
    const path = join(outDir, "dataset_info.json");
    const name = basename(cmd.out, extname(cmd.out));
    let entries: Record<string, unknown> = {};
    if (existsSync(path)) {
      try {
        entries = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
      } catch (e) {
        throw new ConfigError([{ path, message: `not valid JSON (${(e as Error).message}); the entry for ${name} cannot be added` }]);
      }
      if (entries === null || typeof entries !== "object" || Array.isArray(entries)) throw new ConfigError([{ path, message: "not a JSON object of dataset entries" }]);
    }
    info = { path, name, entries: { ...entries, ...llamaFactoryDatasetInfo(name, basename(cmd.out)) } };
  }

  // Content-named, so an image already written is the same image.
  for (const [path, bytes] of placed.files) if (!existsSync(path)) writeAtomic(path, bytes);
  writeAtomic(cmd.out, writePairs(cmd.to, placed.pairs));
  out.stdout(`${cmd.out}: ${placed.pairs.length} pair${placed.pairs.length === 1 ? "" : "s"} (${cmd.to}, from ${cmd.from} ${cmd.input})\n`);
  if (info) {
    writeAtomic(info.path, `${JSON.stringify(info.entries, null, 2)}\n`);
    out.stdout(`${info.path}: entry "${info.name}" (LLaMA-Factory: dataset: ${info.name}, dataset_dir: ${dirname(info.path)})\n`);
  }
  return 0;
}

export interface ImportCommand {
  t2i: string;
  instructions: string;
  ids?: string;
  out: string;
}

export function promptsImportCommand(cmd: ImportCommand, out: Output): number {
  const t2i = readText(cmd.t2i, "--t2i ");
  const instructions = readText(cmd.instructions, "--instructions ");
  const ids = cmd.ids === undefined ? undefined : readText(cmd.ids, "--ids ");
  const { prompts, issues } = promptsFromReleaseFiles(t2i, instructions, ids);
  if (issues.length > 0) throw new ConfigError(issues.map((message) => ({ path: `${cmd.t2i} + ${cmd.instructions}`, message })));
  writeAtomic(cmd.out, promptsJsonl(prompts));
  const categories = new Set(prompts.map((p) => p.category));
  out.stdout(`${cmd.out}: ${prompts.length} prompt${prompts.length === 1 ? "" : "s"} in ${categories.size} categor${categories.size === 1 ? "y" : "ies"}\n`);
  return 0;
}
