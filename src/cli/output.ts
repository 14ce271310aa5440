import type { Listener } from "../events/bus.js";
import { jsonLinesReporter } from "../events/reporters/json-lines.js";
import { ttyReporter } from "../events/reporters/tty.js";
import { stageLine } from "../pipeline/stages/index.js";

/** Where the CLI writes; injected so commands are testable in-process. */
export interface Output {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  isTTY: boolean;
}

export const processOutput: Output = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  isTTY: Boolean(process.stderr.isTTY),
};

/** The reporter a command's events go to: JSON lines on stdout with --json, else progress on stderr. */
export function reporterFor(out: Output, json: boolean): Listener {
  return json ? jsonLinesReporter(out.stdout) : ttyReporter({ write: out.stderr, isTTY: out.isTTY, width: process.stderr.columns, stageLine });
}
