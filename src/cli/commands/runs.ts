// `runs`, `show` and `diff`: a store's runs read from their manifests (nothing runs).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "../../errors.js";
import { diffRuns, diffText, runDetail, runLines, showText, summarize, type KeptImageHashes, type RunSummary } from "../../manifest/summary.js";
import type { PromptRecord } from "../../pipeline/stages/images.js";
import { hasRecords, readRecords } from "../../store/records.js";
import type { Manifest } from "../../manifest/types.js";
import { RunDir } from "../../store/run-dir.js";
import type { Output } from "../output.js";
import { manifestProblem } from "./replay.js";

/** The store's runs/ directory; a path that is no store is bad input. */
function runsDir(store: string): string {
  const dir = join(resolve(store), "runs");
  if (!existsSync(resolve(store))) throw new UsageError(`--store ${store}: no such directory`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--store ${store}: not a pds-dpo store (no runs/ directory)`);
  return dir;
}

/** A manifest read and checked; every way it can be unusable is one line naming the file. */
export function readManifest(path: string): Manifest {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: corrupt manifest (not JSON: ${(e as Error).message.split("\n")[0]})`);
  }
  const problem = manifestProblem(value);
  if (problem) throw new UsageError(`${path}: ${problem}`);
  return value as Manifest;
}

function runManifest(store: string, runId: string): Manifest {
  runsDir(store);
  const dir = new RunDir(resolve(store), runId);
  if (!existsSync(dir.path)) throw new UsageError(`no run '${runId}' in ${resolve(store)} (orchestrate runs --store ${store} lists them)`);
  if (!existsSync(dir.manifestPath)) throw new UsageError(`run '${runId}' has no manifest.json (it did not get far enough to write one)`);
  return readManifest(dir.manifestPath);
}

/** One line per run, oldest first; a run whose manifest is unreadable is named on stderr (exit 2). */
export function runsCommand(o: { store: string; json: boolean }, out: Output): number {
  const dir = runsDir(o.store);
  const summaries: RunSummary[] = [];
  let bad = 0;
  for (const id of readdirSync(dir).sort()) {
    const path = join(dir, id, "manifest.json");
    if (!statSync(join(dir, id)).isDirectory() || !existsSync(path)) continue;
    try {
      summaries.push(summarize(readManifest(path)));
    } catch (e) {
      bad++;
      out.stderr(`error: ${(e as Error).message}\n`);
    }
  }
  summaries.sort((a, b) => (a.started ?? "").localeCompare(b.started ?? "") || a.id.localeCompare(b.id));
  for (const line of o.json ? summaries.map((s) => JSON.stringify(s)) : runLines(summaries)) out.stdout(`${line}\n`);
  if (!o.json && summaries.length === 0 && bad === 0) out.stderr(`no runs in ${resolve(o.store)}\n`);
  return bad > 0 ? 2 : 0;
}

export function showCommand(o: { runId: string; store: string; json: boolean }, out: Output): number {
  const m = runManifest(o.store, o.runId);
  out.stdout(o.json ? `${JSON.stringify(runDetail(m), null, 2)}\n` : showText(m));
  return 0;
}

export function diffCommand(o: { runA: string; runB: string; store: string; json: boolean }, out: Output): number {
  const a = runManifest(o.store, o.runA);
  const b = runManifest(o.store, o.runB);
  const diffs = diffRuns(a, b, { a: keptImageHashes(o.store, a), b: keptImageHashes(o.store, b) });
  out.stdout(o.json ? `${JSON.stringify({ a: a.run_id, b: b.run_id, differences: diffs }, null, 2)}\n` : diffText(a.run_id, b.run_id, diffs));
  return 0;
}

/** A run's kept images from its image records (none when it has no records). */
function keptImageHashes(store: string, m: Manifest): KeptImageHashes {
  const dir = new RunDir(resolve(store), m.run_id).path;
  const ref = m.stages.images?.records;
  const out: KeptImageHashes = {};
  if (!hasRecords(dir, ref)) return out;
  for (const p of readRecords<PromptRecord>(dir, ref!)) if (p.kept) out[p.kept.path] = p.kept.sha256;
  return out;
}
