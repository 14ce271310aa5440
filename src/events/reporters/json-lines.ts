import { appendFileSync } from "node:fs";
import type { Listener } from "../bus.js";

/** Every event as one JSON line to a writable stream (`--json` on stdout). */
export function jsonLinesReporter(write: (line: string) => void): Listener {
  return (event) => write(`${JSON.stringify(event)}\n`);
}

/** events.jsonl of the run directory: appended as each event happens, so a crash keeps them. */
export function eventsFileReporter(path: string): Listener {
  return jsonLinesReporter((line) => appendFileSync(path, line));
}
