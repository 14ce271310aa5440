import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "../../errors.js";
import type { RunEvent } from "../../events/types.js";
import { STAGE_REGISTRY } from "../../pipeline/stages/index.js";
import { readLines } from "../../store/records.js";
import { RunDir } from "../../store/run-dir.js";
import type { Output } from "../output.js";
import { runCommand } from "./run.js";

// An event line as the bus writes it: {"ts": ..., "type": ...} first, so its type is read without parsing it.
const TYPE = /^\{"ts":"[^"]*","type":"([^"]+)"/;

/**
 * The events of events.jsonl a resumed run needs, read a line at a time. Per-item events
 * whose content the stages' records hold (Stage.recordEvents) stay in the file but are not
 * read into memory; a last line cut short by a killed process is left out.
 */
export function readResumeEvents(path: string): RunEvent[] {
  const skip = new Set<string>(STAGE_REGISTRY.flatMap((s) => s.recordEvents ?? []));
  const events: RunEvent[] = [];
  let bad: string | null = null;
  let n = 0;
  for (const line of readLines(path)) {
    n++;
    // Only the last line may be cut short.
    if (bad) throw new UsageError(bad);
    const type = TYPE.exec(line)?.[1];
    if (type !== undefined && skip.has(type)) continue;
    try {
      events.push(JSON.parse(line) as RunEvent);
    } catch (e) {
      bad = `events.jsonl line ${n} is not JSON: ${(e as Error).message}`;
    }
  }
  return events;
}

/** Finishes a run: finished stages are kept, the others run again (training from its last checkpoint). */
export async function resumeCommand(opts: { runId: string; store: string; json: boolean }, out: Output, signal: AbortSignal) {
  const dir = new RunDir(resolve(opts.store), opts.runId);
  if (!existsSync(dir.manifestPath)) throw new UsageError(`no run ${opts.runId} in ${resolve(opts.store)} (no ${dir.manifestPath})`);
  const manifest = JSON.parse(readFileSync(dir.manifestPath, "utf8")) as { status: string; config: { file: string; sha256: string } };
  if (manifest.status === "succeeded") throw new UsageError(`run ${opts.runId} already succeeded; nothing to resume`);
  const events = existsSync(dir.eventsPath) ? readResumeEvents(dir.eventsPath) : [];
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
