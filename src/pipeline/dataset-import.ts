// A train-only experiment's dataset (stages.train.dataset): read in its format, each image
// checked, then made the run's own: its images into the store and the run directory
// (dataset/images/<sha256 prefix>.<ext>) and the pairs as the run's dataset/pairs.jsonl, so
// the trainer sees exactly what a run that made its pairs would give it, and the manifest
// pins the source file and every image by hash.
import { mkdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { resolvePath, type LoadedConfig } from "../config/load.js";
import { writePairs, type DatasetFormat } from "../dataset/formats.js";
import { imageExtension } from "../dataset/parquet.js";
import { datasetFormatOf, readDatasetAsync } from "../dataset/read.js";
import type { ContentStore } from "../store/cas.js";
import { sha256 } from "../store/cas.js";
import { recordsPath, RecordsWriter, type RecordsRef } from "../store/records.js";
import type { RunDir } from "../store/run-dir.js";

export interface ImportedDataset {
  /** The run's dataset/pairs.jsonl, relative to the run directory. */
  path: string;
  sha256: string;
  pairs: number;
  source: { path: string; sha256: string; format: DatasetFormat };
  /** Every image, pinned by hash ({path, sha256} a line, by path): records/dataset-images.jsonl. */
  images: RecordsRef;
}

/** Makes the dataset the run's own (see the module comment); throws on a problem `validate` would have named. */
export async function importDataset(loaded: LoadedConfig, runDir: RunDir, store: ContentStore): Promise<{ dataset: ImportedDataset; imageHashes: string[] }> {
  const stage = loaded.config.stages.train!;
  const read = await readDatasetAsync(resolvePath(loaded.baseDir, stage.dataset!), datasetFormatOf(stage), stage.image_root ? resolvePath(loaded.baseDir, stage.image_root) : undefined);
  if (read.issues.length > 0) throw new Error(`stages.train.dataset: ${read.file}: ${read.issues[0]}`);
  const placed = new Map<string, { path: string; sha256: string }>();
  // The trainer's dataset without metadata: the same pairs give the same dataset (and training) whatever the source format.
  const pairs = read.pairs.map(({ metadata: _, ...p }, i) => ({
    ...p,
    images: read.images[i]!.map((abs) => {
      let got = placed.get(abs);
      if (!got) {
        const inFile = read.embedded?.get(abs);
        const bytes = inFile ? Buffer.from(inFile) : readFileSync(abs);
        const info = store.put(bytes, "application/octet-stream");
        const rel = join("dataset", "images", `${info.sha256.slice(0, 16)}${inFile ? imageExtension(inFile) : extname(abs).toLowerCase()}`);
        runDir.placeArtifact(store.pathOf(info.sha256), join(runDir.path, rel));
        got = { path: rel, sha256: info.sha256 };
        placed.set(abs, got);
      }
      return got.path;
    }),
  }));
  const text = writePairs("trl", pairs);
  const path = join("dataset", "pairs.jsonl");
  mkdirSync(join(runDir.path, "dataset"), { recursive: true });
  runDir.writeAtomic(join(runDir.path, path), text);
  const images = [...placed.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  const records = new RecordsWriter(runDir.path, recordsPath("dataset-images"));
  images.forEach((image, i) => records.put(i, image));
  return {
    dataset: { path, sha256: sha256(text), pairs: pairs.length, source: { path: read.file, sha256: sha256(readFileSync(read.file)), format: read.format }, images: records.close() },
    imageHashes: images.map((i) => i.sha256),
  };
}
