// What a stage executor gets: the config, the event bus, the store, the run directory,
// the running workers and what earlier stages produced.
import type { LoadedConfig } from "../config/load.js";
import type { EventBus } from "../events/bus.js";
import type { ArtifactInfo, ContentStore } from "../store/cas.js";
import type { RunDir } from "../store/run-dir.js";
import type { ItemCache } from "./item-cache.js";
import type { WorkerPool } from "./worker-pool.js";

export interface KeptImage {
  promptId: string;
  promptIndex: number;
  category: string;
  t2iPrompt: string;
  instruction: string;
  candidateId: string;
  guidanceScale: number;
  score: number;
  artifact: ArtifactInfo;
  /** Relative to the run directory: images/<prompt id>.png. */
  path: string;
}

export interface StageResults {
  images?: KeptImage[];
  /** dataset/pairs.jsonl of the response stage. */
  dataset?: { path: string; sha256: string; pairs: number };
  /** The trained LoRA adapter's directory (relative to the run directory) and weights hash. */
  adapter?: { dir: string; sha256: string };
}

export interface StageContext {
  loaded: LoadedConfig;
  bus: EventBus;
  store: ContentStore;
  runDir: RunDir;
  pool: WorkerPool;
  signal: AbortSignal;
  results: StageResults;
  cache: ItemCache;
}
