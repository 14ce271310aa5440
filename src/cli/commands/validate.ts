import { loadExperiment } from "../../config/load.js";
import type { Output } from "../output.js";

export function validateCommand(config: string, out: Output): number {
  const loaded = loadExperiment(config);
  out.stdout(`${config}: ok (${Object.keys(loaded.config.workers).length} workers, ${loaded.prompts.length} prompts)\n`);
  return 0;
}
