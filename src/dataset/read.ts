// A preference dataset on disk (a train-only experiment's): its rows in their format, and
// every image it names checked to be there. `validate` and the train stage read it alike,
// except a parquet file, which is read (asynchronously) by the train stage and convert.
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { TrainStageConfig } from "../config/schema.js";
import { isDatasetFormat, readPairs, type DatasetFormat, type PreferencePair, type ReadResult } from "./formats.js";
import { isParquetFile, readParquetPairs } from "./parquet.js";

/** The dataset's format: as configured, else by its file name (.jsonl: TRL pairs, .json: the PDS-DPO release format). */
export function datasetFormatOf(stage: TrainStageConfig): DatasetFormat {
  if (stage.dataset_format) return stage.dataset_format;
  return stage.dataset!.endsWith(".json") ? "llava" : "trl";
}

export interface ReadDataset {
  file: string;
  format: DatasetFormat;
  pairs: PreferencePair[];
  /** Each pair's images as absolute paths, or the names of images embedded in the file (see `embedded`). */
  images: string[][];
  embedded?: Map<string, Uint8Array>;
  issues: string[];
  /** A parquet file, whose rows only readDatasetAsync reads. */
  deferred?: boolean;
}

/** Reads and checks a dataset: its rows, and that every image it names is a file (relative to the dataset's directory). A parquet file is read by readDatasetAsync; here it is `deferred`. */
export function readDataset(file: string, format: DatasetFormat, imageRoot = defaultImageRoot(file)): ReadDataset {
  if (!isDatasetFormat(format)) return { file, format, pairs: [], images: [], issues: [`unknown format ${format}`] };
  if (isParquetFile(file)) return { file, format, pairs: [], images: [], issues: format === "trl" ? [] : [`a parquet file: only dataset_format trl reads parquet`], deferred: true };
  return checked(file, format, readPairs(format, readFileSync(file, "utf8")), imageRoot);
}

/** readDataset, and a parquet file's rows too (TRL preference data: prompt, chosen, rejected, images). */
export async function readDatasetAsync(file: string, format: DatasetFormat, imageRoot = defaultImageRoot(file)): Promise<ReadDataset> {
  const sync = readDataset(file, format, imageRoot);
  if (!sync.deferred || sync.issues.length > 0) return sync;
  return checked(file, format, await readParquetPairs(file, format), imageRoot);
}

function checked(file: string, format: DatasetFormat, read: ReadResult, imageRoot: string): ReadDataset {
  const issues = [...read.issues];
  const images = read.pairs.map((p, i) =>
    p.images.map((img) => {
      if (read.embedded?.has(img)) return img;
      const abs = isAbsolute(img) ? img : resolve(imageRoot, img);
      if (!existsSync(abs)) issues.push(`${read.where[i] ?? p.id}: image not found: ${abs}`);
      return abs;
    }),
  );
  if (read.pairs.length === 0 && issues.length === 0) issues.push("no preference pairs");
  return { file, format, pairs: read.pairs, images, issues, ...(read.embedded ? { embedded: read.embedded } : {}) };
}

/** Where a dataset's image paths start: its own directory, or, for a run's dataset/ files (a manifest.json beside that folder), the run directory they are relative to. */
export function defaultImageRoot(file: string): string {
  const dir = dirname(file);
  return basename(dir) === "dataset" && existsSync(join(dirname(dir), "manifest.json")) ? dirname(dir) : dir;
}
