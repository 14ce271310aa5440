import { closeSync, openSync, writeSync } from "node:fs";
import type { Listener } from "../bus.js";

/** Every event as one JSON line to a writable stream (`--json` on stdout). */
export function jsonLinesReporter(write: (line: string) => void): Listener {
  return (event) => write(`${JSON.stringify(event)}\n`);
}

/**
 * events.jsonl of the run directory: each event written as it happens (to the open file, not
 * buffered in the process), so a crash keeps them. The file is opened on the first event and
 * closed by run.finished.
 */
export function eventsFileReporter(path: string): Listener {
  let fd: number | null = null;
  const write = jsonLinesReporter((line) => writeSync((fd ??= openSync(path, "a")), line));
  return (event) => {
    write(event);
    if (event.type === "run.finished" && fd !== null) {
      closeSync(fd);
      fd = null;
    }
  };
}
