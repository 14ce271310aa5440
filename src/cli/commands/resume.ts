import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "../../errors.js";
import type { RunEvent } from "../../events/types.js";
import { RunDir } from "../../store/run-dir.js";
import type { Output } from "../output.js";
import { runCommand } from "./run.js";

/** Finishes a run: finished stages are kept, the others run again (training from its last checkpoint). */
export async function resumeCommand(opts: { runId: string; store: string; json: boolean }, out: Output, signal: AbortSignal) {
  const dir = new RunDir(resolve(opts.store), opts.runId);
  if (!existsSync(dir.manifestPath)) throw new UsageError(`no run ${opts.runId} in ${resolve(opts.store)} (no ${dir.manifestPath})`);
  const manifest = JSON.parse(readFileSync(dir.manifestPath, "utf8")) as { status: string; config: { file: string; sha256: string } };
  if (manifest.status === "succeeded") throw new UsageError(`run ${opts.runId} already succeeded; nothing to resume`);
  const events = existsSync(dir.eventsPath)
    ? readFileSync(dir.eventsPath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as RunEvent)
    : [];
  const started = events.find((e): e is Extract<RunEvent, { type: "run.started" }> => e.type === "run.started");
  const until = started?.stages.at(-1);
  return runCommand(
    { config: manifest.config.file, store: opts.store, runId: opts.runId, until, json: opts.json, resume: { events, configSha256: manifest.config.sha256 } },
    out,
    signal,
  );
}
