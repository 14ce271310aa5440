import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "../../errors.js";
import { writeReport } from "../../report/write.js";
import { RunDir } from "../../store/run-dir.js";
import type { Output } from "../output.js";

export function reportCommand(runId: string, store: string, out: Output): number {
  const dir = new RunDir(resolve(store), runId);
  if (!existsSync(dir.manifestPath)) throw new UsageError(`no run ${runId} in ${resolve(store)} (no ${dir.manifestPath})`);
  const { html, json } = writeReport(dir.path);
  out.stdout(`${html}\n${json}\n`);
  return 0;
}
