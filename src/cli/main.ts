// The thin CLI: parse argv, call one function, map errors to exit codes and one line.
import { statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError, EXIT, OrchestratorError, UsageError } from "../errors.js";
import { orchestratorVersion } from "../util/project.js";
import { callCommand } from "./commands/call.js";
import { datasetConvertCommand, promptsImportCommand } from "./commands/dataset.js";
import { datasetExportCommand } from "./commands/dataset-export.js";
import { k8sRenderCommand } from "./commands/k8s-render.js";
import { planCommand } from "./commands/plan.js";
import { replayCommand } from "./commands/replay.js";
import { reportCommand } from "./commands/report.js";
import { resumeCommand } from "./commands/resume.js";
import { runCommand } from "./commands/run.js";
import { diffCommand, runsCommand, showCommand } from "./commands/runs.js";
import { schemaCommand } from "./commands/schema.js";
import { validateCommand } from "./commands/validate.js";
import { workersCheckCommand } from "./commands/workers-check.js";
import { processOutput, type Output } from "./output.js";
import { parseCLI, USAGE } from "./parse.js";

/** Why `--store` cannot be the store root: it (or the first of its parents that exists) is no directory. */
export function storeProblem(store: string): string | undefined {
  const root = resolve(store);
  for (let p = root; ; p = dirname(p)) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Not there yet (created on first use), or under a file (ENOTDIR): look at the parent.
      if ((code === "ENOENT" || code === "ENOTDIR") && dirname(p) !== p) continue;
      return undefined;
    }
    if (isDir) return undefined;
    return p === root ? `--store ${store}: not a directory` : `--store ${store}: cannot be made under ${p}, which is not a directory`;
  }
}

function report(err: unknown, verbose: boolean, out: Output): number {
  if (err instanceof ConfigError) {
    for (const line of err.message.split("\n")) out.stderr(`${line}\n`);
  } else if (err instanceof OrchestratorError) {
    out.stderr(`error: ${err.message}\n`);
  } else {
    out.stderr(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  if (verbose && err instanceof Error && err.stack) out.stderr(`${err.stack}\n`);
  return err instanceof OrchestratorError ? err.exitCode : EXIT.failed;
}

export async function main(argv: string[], out: Output = processOutput, signal = new AbortController().signal): Promise<number> {
  let verbose = argv.includes("--verbose");
  try {
    const cmd = parseCLI(argv);
    if ("verbose" in cmd) verbose = cmd.verbose;
    if ("store" in cmd) {
      const problem = storeProblem(cmd.store);
      if (problem) throw new UsageError(problem);
    }
    switch (cmd.command) {
      case "help":
        out.stdout(`${USAGE}\n`);
        return 0;
      case "version":
        out.stdout(`${orchestratorVersion()}\n`);
        return 0;
      case "validate":
        return validateCommand(cmd.config, out);
      case "schema":
        return schemaCommand(out);
      case "runs":
        return runsCommand(cmd, out);
      case "show":
        return showCommand(cmd, out);
      case "diff":
        return diffCommand(cmd, out);
      case "call":
        return await callCommand(cmd, out, signal);
      case "plan":
        return planCommand(cmd, out);
      case "workers-check":
        return await workersCheckCommand(cmd.config, cmd.store, cmd.json, out);
      case "k8s-render":
        return k8sRenderCommand(cmd, out);
      case "dataset-convert":
        return await datasetConvertCommand(cmd, out);
      case "dataset-export":
        return await datasetExportCommand(cmd, out);
      case "prompts-import":
        return promptsImportCommand(cmd, out);
      case "replay":
        return await replayCommand(cmd, out, signal);
      case "report":
        return reportCommand(cmd.runId, cmd.store, out);
      case "resume": {
        const { code, error } = await resumeCommand(cmd, out, signal);
        return error === undefined ? code : report(error, verbose, out);
      }
      case "run": {
        const { code, error } = await runCommand(cmd, out, signal);
        return error === undefined ? code : report(error, verbose, out);
      }
    }
  } catch (e) {
    return report(e, verbose, out);
  }
}

/** Process entry: Ctrl-C or SIGTERM cancels the run; workers are stopped before exit. */
export async function runProcess(): Promise<void> {
  // A closed pipe (`orchestrate plan ... | head`) must not crash a command or a run.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
    });
  }
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.exitCode = await main(process.argv.slice(2), processOutput, abort.signal);
}
