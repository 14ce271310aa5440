// The memory plan of a run's stages: model sizes read from disk (or known), then the pure
// plan (plan/memory.ts). `plan` prints it; `run` refuses a plan that cannot fit and starts
// workers by its schedule.
import type { LoadedConfig } from "../config/load.js";
import type { StageName } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import { memoryPlan, type MemoryPlan } from "../plan/memory.js";
import { modelSize } from "../workers/model-files.js";
import { stageOf } from "./stages/index.js";

export function memoryPlanFor(loaded: LoadedConfig, stages: StageName[]): MemoryPlan {
  const usage = stages.map((s) => stageOf(s).workers(loaded.config));
  const names = [...new Set(usage.flat())];
  const sizes = Object.fromEntries(names.map((w) => [w, modelSize(loaded.config.workers[w]!.model, loaded.baseDir)]));
  return memoryPlan(loaded.config, stages, usage, sizes);
}

/** Exit 2: each stage and device whose workers do not fit in the declared memory. */
export function memoryError(plan: MemoryPlan): ConfigError {
  return new ConfigError(plan.problems.map((p) => ({ path: "gpu_memory_gb", message: `does not fit: ${p}; place workers on other devices (runtime.devices) or declare more` })));
}

export function formatMemoryPlan(plan: MemoryPlan): string {
  const lines = ["memory (estimated GB per stage and device; see src/plan/memory.ts):"];
  for (const s of plan.stages) {
    for (const d of s.devices) {
      const residents = d.residents.map((r) => `${r.worker} ${Number.isFinite(r.gb) ? r.gb : "?"}`).join(", ");
      lines.push(`  ${s.stage.padEnd(9)} ${d.device.padEnd(7)} ${String(d.gb).padStart(6)}${d.limitGb !== undefined ? ` of ${d.limitGb}` : ""}: ${residents}`);
    }
  }
  const name = (i: number) => plan.stages[i]?.stage ?? String(i);
  for (const [w, s] of Object.entries(plan.schedule)) {
    const start = s.start === 0 && s.first > 0 ? "with the run" : s.start < s.first ? `during ${name(s.start)}` : `before ${name(s.start)}`;
    lines.push(`  worker ${w}: loads ${start}, stops after ${name(s.stop)}`);
  }
  if (plan.unknown.length) lines.push(`  size unknown (not counted): ${plan.unknown.join(", ")}; their weights are neither on disk nor in the known table`);
  return `${lines.join("\n")}\n`;
}
