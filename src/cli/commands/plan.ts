import { loadExperiment } from "../../config/load.js";
import { responseScorers } from "../../config/schema.js";
import { planImages } from "../../plan/image-plan.js";
import { stagesToRun, workersFor } from "../../pipeline/run.js";
import type { Output } from "../output.js";

/** Every configured stage with its item counts (upper bounds after the image stage), workers and seeds. */
export function planCommand(config: string, json: boolean, out: Output): number {
  const loaded = loadExperiment(config);
  const { stages: s } = loaded.config;
  const stages = stagesToRun(loaded);
  const candidates = planImages(s.images, loaded.prompts, loaded.config.seed, loaded.config.seed_policy);
  const prompts = loaded.prompts.length;
  const workers = workersFor(loaded, stages).map((name) => ({ name, kind: loaded.config.workers[name]!.kind, model: loaded.config.workers[name]!.model }));
  const counts: Record<string, Record<string, number>> = { images: { prompts, candidates: candidates.length, cache_hits: 0 } };
  if (s.responses) {
    const answers = prompts * s.responses.responders.length * s.responses.decoding.num_samples;
    counts.responses = { max_kept_images: prompts, max_answers: answers, max_scores: answers * responseScorers(s.responses).length, max_pairs: prompts * s.responses.pairs.pairs_per_image, cache_hits: 0 };
  }
  if (s.train) counts.train = { max_steps: s.train.optim.max_steps ?? 0, epochs: s.train.optim.max_steps ? 0 : (s.train.optim.epochs ?? 1), gpus: s.train.gpus };
  if (s.evaluate) counts.evaluate = { benchmarks: s.evaluate.benchmarks.length, models: s.train ? 2 : 1 };
  const plan = {
    name: loaded.config.name,
    config_sha256: loaded.sha256,
    stages: counts,
    workers,
    items: candidates.map((c) => ({ id: c.id, seed: c.seed, guidance_scale: c.guidanceScale })),
  };
  if (json) {
    out.stdout(`${JSON.stringify(plan)}\n`);
    return 0;
  }
  out.stdout(`experiment ${plan.name} (config sha256 ${plan.config_sha256.slice(0, 12)})\n`);
  for (const [stage, c] of Object.entries(counts)) out.stdout(`stage ${stage}: ${Object.entries(c).map(([k, v]) => `${k}=${v}`).join(" ")}\n`);
  for (const w of workers) out.stdout(`worker ${w.name}: ${w.kind}, model ${JSON.stringify(w.model)}\n`);
  for (const c of plan.items.slice(0, 8)) out.stdout(`  ${c.id} seed=${c.seed}\n`);
  if (plan.items.length > 8) out.stdout(`  ... ${plan.items.length - 8} more\n`);
  return 0;
}
