// `orchestrate dataset export --format hf <run-id>`: the run's pairs as a Hugging Face datasets
// dataset (dataset/hf/: parquet with the images, a dataset card). The `datasets` library does
// the writing, so the project's Python (`python -m pds_dpo_workers export-hf`) runs it here,
// where the run directory is: it needs no worker, so it is the same for every runtime.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { execa } from "execa";
import { OrchestratorError, UsageError } from "../../errors.js";
import { RunDir } from "../../store/run-dir.js";
import { defaultPython } from "../../util/project.js";
import type { Output } from "../output.js";

export async function datasetExportCommand(cmd: { runId: string; store: string; out?: string; license?: string }, out: Output): Promise<number> {
  const dir = new RunDir(resolve(cmd.store), cmd.runId);
  if (!existsSync(dir.path)) throw new UsageError(`no run ${cmd.runId} in ${resolve(cmd.store)} (no ${dir.path})`);
  const python = defaultPython();
  if (!existsSync(python)) throw new UsageError(`Python interpreter not found at ${python} (run the setup script, or set PDS_DPO_PYTHON)`);
  const args = ["-m", "pds_dpo_workers", "export-hf", dir.path, ...(cmd.out ? ["--out", resolve(cmd.out)] : []), ...(cmd.license ? ["--license", cmd.license] : [])];
  const r = await execa(python, args, { reject: false, env: { HF_HUB_OFFLINE: "1", HF_DATASETS_OFFLINE: "1" }, extendEnv: true });
  const lastLine = (text: string) => text.trim().split("\n").at(-1) ?? "";
  // Exit 2: the run's dataset is bad (a row, an image), named on one line.
  if (r.exitCode === 2) throw new UsageError(lastLine(r.stderr).replace(/^pds_dpo_workers export-hf: /, ""));
  if (r.exitCode !== 0) throw new OrchestratorError("internal", `the export failed (${python} ${args.slice(0, 3).join(" ")}, exit ${String(r.exitCode ?? r.signal)}): ${lastLine(r.stderr)}`);
  const written = JSON.parse(lastLine(r.stdout)) as { path: string; pairs: number; files: string[] };
  out.stdout(`${written.pairs} pairs → ${written.path} (${written.files.join(", ")})\n`);
  return 0;
}
