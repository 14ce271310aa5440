import { loadExperiment } from "../../config/load.js";
import { formatIssue } from "../../errors.js";
import type { Output } from "../output.js";

export function validateCommand(config: string, out: Output): number {
  const loaded = loadExperiment(config);
  for (const w of loaded.warnings) out.stderr(`warning: ${formatIssue(w)}\n`);
  out.stdout(`${config}: ok (${Object.keys(loaded.config.workers).length} workers, ${loaded.prompts.length} prompts${loaded.warnings.length ? `, ${loaded.warnings.length} warning${loaded.warnings.length > 1 ? "s" : ""}` : ""})\n`);
  return 0;
}
