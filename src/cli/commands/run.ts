import { resolve } from "node:path";
import type { StageName } from "../../config/schema.js";
import { EventBus } from "../../events/bus.js";
import { runExperiment, type RunOptions } from "../../pipeline/run.js";
import { reporterFor, type Output } from "../output.js";

export async function runCommand(
  opts: { config: string; store: string; runId?: string; until?: StageName; noCache?: boolean; cache?: RunOptions["cache"]; json: boolean; resume?: RunOptions["resume"] },
  out: Output,
  signal: AbortSignal,
): Promise<{ code: number; error?: unknown }> {
  const bus = new EventBus();
  bus.subscribe(reporterFor(out, opts.json));
  const result = await runExperiment({ configPath: opts.config, storeRoot: resolve(opts.store), runId: opts.runId, until: opts.until, bus, signal, resume: opts.resume, cache: opts.cache ?? (opts.noCache ? "off" : "use") });
  if (result.status === "succeeded") {
    if (!opts.json) out.stdout(`${result.runDir}\n`);
    return { code: 0 };
  }
  return { code: 1, error: result.error };
}
