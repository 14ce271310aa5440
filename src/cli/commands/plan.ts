import { loadExperiment } from "../../config/load.js";
import { planImages } from "../../plan/image-plan.js";
import { stagesToRun, workersFor } from "../../pipeline/run.js";
import type { Output } from "../output.js";

export function planCommand(config: string, json: boolean, out: Output): number {
  const loaded = loadExperiment(config);
  const stages = stagesToRun(loaded, "images");
  const candidates = planImages(loaded.config.stages.images, loaded.prompts, loaded.config.seed, loaded.config.seed_policy);
  const workers = workersFor(loaded, stages).map((name) => ({ name, kind: loaded.config.workers[name]!.kind, model: loaded.config.workers[name]!.model }));
  const plan = {
    name: loaded.config.name,
    config_sha256: loaded.sha256,
    stages: { images: { prompts: loaded.prompts.length, candidates: candidates.length, cache_hits: 0 } },
    not_configured: (["responses", "train", "evaluate"] as const).filter((s) => !loaded.config.stages[s]),
    workers,
    items: candidates.map((c) => ({ id: c.id, seed: c.seed, guidance_scale: c.guidanceScale })),
  };
  if (json) {
    out.stdout(`${JSON.stringify(plan)}\n`);
    return 0;
  }
  out.stdout(`experiment ${plan.name} (config sha256 ${plan.config_sha256.slice(0, 12)})\n`);
  out.stdout(`stage images: ${plan.stages.images.prompts} prompts -> ${plan.stages.images.candidates} images to generate and score\n`);
  for (const w of workers) out.stdout(`worker ${w.name}: ${w.kind}, model ${JSON.stringify(w.model)}\n`);
  for (const c of plan.items.slice(0, 8)) out.stdout(`  ${c.id} seed=${c.seed}\n`);
  if (plan.items.length > 8) out.stdout(`  ... ${plan.items.length - 8} more\n`);
  return 0;
}
