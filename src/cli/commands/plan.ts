import { formatMemoryPlan, memoryError, memoryPlanFor } from "../../pipeline/memory-plan.js";
import { formatIssue } from "../../errors.js";
import { join, resolve } from "node:path";
import { loadExperiment, type LoadedConfig } from "../../config/load.js";
import { workerSpecDigest, type WorkerFingerprint } from "../../plan/cache-keys.js";
import { forecastHits, type ForecastWorker } from "../../plan/cache-forecast.js";
import type { ImageCandidate } from "../../plan/image-plan.js";
import { decodingRequest } from "../../plan/item-keys.js";
import { ContentStore } from "../../store/cas.js";
import { questionOf } from "../../store/dataset-format.js";
import { Journal, JOURNAL_FILE } from "../../store/journal.js";
import { existsSync } from "node:fs";
import { batchSizeOf, responseScorers } from "../../config/schema.js";
import { planImages } from "../../plan/image-plan.js";
import { sweepPoints } from "../../plan/sweep.js";
import { stagesToRun, workersFor } from "../../pipeline/run.js";
import { stageOf } from "../../pipeline/stages/index.js";
import type { Output } from "../output.js";

/** Cache hits per stage, forecast from the store's journal and each worker's last seen fingerprint. */
function cacheForecast(loaded: LoadedConfig, storeRoot: string, candidates: ImageCandidate[]) {
  // A train-only experiment makes no images or answers to find in the cache.
  const images = loaded.config.stages.images;
  if (!images) return undefined;
  const journal = Journal.openReadonly(storeRoot);
  try {
    const store = new ContentStore(storeRoot);
    const worker = (name: string): ForecastWorker => {
      const config = loaded.config.workers[name]!;
      return { name, fingerprint: (journal?.knownWorker(workerSpecDigest(config)) as WorkerFingerprint | undefined) ?? null, batchSize: batchSizeOf(config) };
    };
    const s = loaded.config.stages;
    return forecastHits({
      seed: loaded.config.seed,
      candidates,
      generator: worker(images.generator),
      scorer: worker(images.scorer),
      minScore: images.min_score,
      ...(s.responses
        ? {
            responses: {
              responders: s.responses.responders.map(worker),
              scorers: responseScorers(s.responses).map((x) => worker(x.worker)),
              decoding: decodingRequest(s.responses.decoding),
              questionOf,
            },
          }
        : {}),
      lookup: (key) => {
        const e = journal?.lookup(key);
        return e && e.artifacts.every((sha) => store.intact(sha)) ? e.result : undefined;
      },
    });
  } finally {
    journal?.close();
  }
}

/** Every configured stage with its item counts (upper bounds after the image stage), cache hits, workers and seeds. */
export function planCommand(opts: { config: string; store: string; json: boolean }, out: Output): number {
  const { json } = opts;
  const loaded = loadExperiment(opts.config);
  for (const w of loaded.warnings) out.stderr(`warning: ${formatIssue(w)}\n`);
  const { stages: s } = loaded.config;
  const stages = stagesToRun(loaded);
  const candidates = s.images ? planImages(s.images, loaded.prompts, loaded.config.seed, loaded.config.seed_policy) : [];
  const workers = workersFor(loaded, stages).map((name) => ({ name, kind: loaded.config.workers[name]!.kind, model: loaded.config.workers[name]!.model }));
  const forecast = cacheForecast(loaded, resolve(opts.store), candidates) ?? {};
  const counts = Object.fromEntries(stages.map((name) => [name, stageOf(name).plan({ loaded, forecast })]));
  const plan = {
    name: loaded.config.name,
    config_sha256: loaded.sha256,
    store: resolve(opts.store),
    journal: existsSync(join(resolve(opts.store), JOURNAL_FILE)) ? "found" : "none (nothing cached yet)",
    stages: counts,
    workers,
    items: candidates.map((c) => ({ id: c.id, seed: c.seed, guidance_scale: c.guidanceScale })),
    memory: memoryPlanFor(loaded, stages),
    ...(loaded.config.sweep ? { sweep: sweepPoints(loaded.config.sweep, loaded.config.seed) } : {}),
  };
  const refused = plan.memory.problems.length > 0 ? memoryError(plan.memory) : undefined;
  if (json) {
    out.stdout(`${JSON.stringify(plan)}\n`);
    if (refused) throw refused;
    return 0;
  }
  out.stdout(`experiment ${plan.name} (config sha256 ${plan.config_sha256.slice(0, 12)}); store ${plan.store}, journal ${plan.journal}\n`);
  for (const [stage, c] of Object.entries(counts)) out.stdout(`stage ${stage}: ${Object.entries(c).map(([k, v]) => `${k}=${v}`).join(" ")}\n`);
  // A sweep: upstream stages once, then one training and one evaluated variant a point.
  if (plan.sweep) out.stdout(`sweep: ${plan.sweep.length} points, each trained and evaluated as its own variant (the base once): ${plan.sweep.map((p) => `${p.name} (${p.size} pairs, seed ${p.seed})`).join(", ")}\n`);
  for (const w of workers) out.stdout(`worker ${w.name}: ${w.kind}, model ${JSON.stringify(w.model)}\n`);
  for (const c of plan.items.slice(0, 8)) out.stdout(`  ${c.id} seed=${c.seed}\n`);
  if (plan.items.length > 8) out.stdout(`  ... ${plan.items.length - 8} more\n`);
  out.stdout(formatMemoryPlan(plan.memory));
  if (refused) throw refused;
  return 0;
}
