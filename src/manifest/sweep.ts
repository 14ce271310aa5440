// Pure: the manifest's sweep section, from the train stage's points and the evaluate stage's
// results: each point's size, seed, subset and adapter hashes and its metrics, the base
// model's metrics beside them (what the report's Table 3 and replay read).
import type { ManifestStages } from "./types.js";

export interface SweepMetrics {
  benchmark: string;
  split: string;
  metrics: Record<string, number>;
}

export interface SweepEntry {
  name: string;
  size: number;
  seed: number;
  subset_sha256: string;
  adapter_sha256: string | null;
  /** The final training step's loss, when it trained. */
  loss: number | null;
  metrics: SweepMetrics[];
}

export interface SweepSection {
  /** The base model's metrics (evaluated once). */
  base: SweepMetrics[];
  points: SweepEntry[];
}

declare module "./types.js" {
  interface Manifest {
    /** A data-size sweep's points (see src/plan/sweep.ts); absent without a sweep. */
    sweep?: SweepSection;
  }
}

export function sweepSection(stages: ManifestStages): SweepSection | undefined {
  const points = stages.train?.points;
  if (!points?.length) return undefined;
  const results = stages.evaluate?.results ?? [];
  const of = (model: string): SweepMetrics[] => results.filter((r) => r.model === model).map((r) => ({ benchmark: r.benchmark, split: r.split, metrics: r.metrics }));
  return {
    base: of("base"),
    points: points.map((p) => ({
      name: p.name,
      size: p.size,
      seed: p.seed,
      subset_sha256: p.subset.sha256,
      adapter_sha256: p.adapter?.sha256 ?? null,
      loss: p.final_metrics?.loss ?? null,
      metrics: of(p.name),
    })),
  };
}
