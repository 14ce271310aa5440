import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "../../errors.js";
import type { RunEvent } from "../../events/types.js";
import { RunDir } from "../../store/run-dir.js";
import type { Output } from "../output.js";
import { runCommand } from "./run.js";

/** The events of events.jsonl; a last line cut short by a killed process is left out. */
export function parseEventLines(text: string): RunEvent[] {
  const lines = text.split("\n").filter((l) => l.trim());
  const events: RunEvent[] = [];
  lines.forEach((line, i) => {
    try {
      events.push(JSON.parse(line) as RunEvent);
    } catch (e) {
      if (i !== lines.length - 1) throw new UsageError(`events.jsonl line ${i + 1} is not JSON: ${(e as Error).message}`);
    }
  });
  return events;
}

/** Finishes a run: finished stages are kept, the others run again (training from its last checkpoint). */
export async function resumeCommand(opts: { runId: string; store: string; json: boolean }, out: Output, signal: AbortSignal) {
  const dir = new RunDir(resolve(opts.store), opts.runId);
  if (!existsSync(dir.manifestPath)) throw new UsageError(`no run ${opts.runId} in ${resolve(opts.store)} (no ${dir.manifestPath})`);
  const manifest = JSON.parse(readFileSync(dir.manifestPath, "utf8")) as { status: string; config: { file: string; sha256: string } };
  if (manifest.status === "succeeded") throw new UsageError(`run ${opts.runId} already succeeded; nothing to resume`);
  const events = existsSync(dir.eventsPath) ? parseEventLines(readFileSync(dir.eventsPath, "utf8")) : [];
  const started = events.find((e): e is Extract<RunEvent, { type: "run.started" }> => e.type === "run.started");
  const until = started?.stages.at(-1);
  // Items the interrupted attempt journaled are reused; a --no-cache run reuses only its own.
  const cache = started?.cache === "off" || started?.cache === "own-run" ? "own-run" : "use";
  return runCommand(
    { config: manifest.config.file, store: opts.store, runId: opts.runId, until, cache, json: opts.json, resume: { events, configSha256: manifest.config.sha256 } },
    out,
    signal,
  );
}
