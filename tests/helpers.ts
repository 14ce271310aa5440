// Shared helpers of the integration tests: temporary experiments and the real CLI.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { execa, type ResultPromise } from "execa";
import { expect } from "vitest";
import { JOURNAL_FILE } from "../src/store/journal.js";

export const ROOT = resolve(import.meta.dirname, "..");
export const BIN = join(ROOT, "bin", "orchestrate.js");

export function tempDir(prefix = "pdsdpo-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** prompts.jsonl in dir: the first n tiny prompts, then any extra lines. */
export function writePrompts(dir: string, n: number, extra: string[] = []): void {
  const lines = readFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), "utf8").trim().split("\n").slice(0, n);
  writeFileSync(join(dir, "prompts.jsonl"), `${[...lines, ...extra].join("\n")}\n`);
}

/** A minimal valid experiment (an image stage of two tiny workers); tests edit it by string replacement. Its lines are fixed: tests name them. */
export const MINIMAL_EXPERIMENT = `name: t
seed: 1
workers:
  sd:
    kind: image-generator
    model: {source: tiny, name: sd}
  pick:
    kind: image-scorer
    model: {source: tiny, name: clip-scorer}
stages:
  images:
    prompts: prompts.jsonl
    generator: sd
    scorer: pick
    guidance_scales: [5, 7]
    steps: 2
    size: 64
`;

/** The runtime of every test worker: local, CPU, one torch thread (tests run side by side). */
export const LOCAL_CPU = "runtime: {type: local, device: cpu, cpu_threads: 1}";

/** The real tiny workers of the end-to-end tests, each as one YAML flow mapping. */
export const TINY_WORKERS: Record<string, string> = {
  sd: `{kind: image-generator, model: {source: tiny, name: sd}, ${LOCAL_CPU}}`,
  pick: `{kind: image-scorer, model: {source: tiny, name: clip-scorer}, ${LOCAL_CPU}}`,
  a: `{kind: responder, model: {source: tiny, name: llava, seed: 1}, ${LOCAL_CPU}}`,
  b: `{kind: responder, model: {source: tiny, name: llava, seed: 2}, ${LOCAL_CPU}}`,
  rm: `{kind: response-scorer, model: {source: tiny, name: reward}, ${LOCAL_CPU}}`,
  dpo: `{kind: dpo-trainer, model: {source: tiny, name: llava, seed: 1}, ${LOCAL_CPU}}`,
  pope: `{kind: evaluator, model: {source: tiny, name: llava, seed: 1}, ${LOCAL_CPU}}`,
};

/** A `workers:` block of real tiny workers; `extra` adds keys to some (e.g. {sd: "batch_size: 2"}). */
export function tinyWorkers(names: string[], extra: Record<string, string> = {}): string {
  return `workers:\n${names.map((n) => `  ${n}: ${TINY_WORKERS[n]!.replace(/}$/, extra[n] ? `, ${extra[n]}}` : "}")}`).join("\n")}\n`;
}

export interface TinyOptions {
  limit?: number;
  steps?: number;
  generatorModel?: string;
  generatorExtra?: string;
  scales?: number[];
  batch?: number;
  seed?: number;
}

/** A tiny experiment in its own directory (prompts copied beside it); returns the YAML path. */
export function writeTinyExperiment(dir: string, o: TinyOptions = {}): string {
  copyFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), join(dir, "prompts.jsonl"));
  const yaml = `name: test
seed: ${o.seed ?? 7}
workers:
  sd:
    kind: image-generator
    model: ${o.generatorModel ?? "{source: tiny, name: sd}"}
    runtime: {type: local, device: cpu, cpu_threads: 1${o.generatorExtra ?? ""}}
    batch_size: ${o.batch ?? 4}
  pick:
    kind: image-scorer
    model: {source: tiny, name: clip-scorer}
    runtime: {type: local, device: cpu, cpu_threads: 1}
stages:
  images:
    prompts: prompts.jsonl
    limit: ${o.limit ?? 2}
    generator: sd
    scorer: pick
    guidance_scales: [${(o.scales ?? [5, 7, 9, 11]).join(", ")}]
    steps: ${o.steps ?? 2}
    size: 64
`;
  const path = join(dir, "experiment.yaml");
  writeFileSync(path, yaml);
  return path;
}

export function cli(args: string[], opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}): ResultPromise<{ reject: false; all: false }> {
  return execa("node", [BIN, ...args], { cwd: opts.cwd ?? ROOT, reject: false, timeout: opts.timeoutMs ?? 170_000, env: { HF_HUB_OFFLINE: "1", ...opts.env } }) as never;
}

/** Every file under a directory, recursively. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

export function readJson<T = Record<string, unknown>>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Whether a process is still alive. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** What the journal holds for a run: each (op, item) and how often it was committed. */
export function journalItems(store: string, runId: string): { op: string; item_id: string; n: number }[] {
  const db = new Database(join(store, JOURNAL_FILE), { readonly: true });
  try {
    return db.prepare("SELECT op, item_id, count(*) AS n FROM run_items WHERE run_id = ? GROUP BY op, item_id ORDER BY op, item_id").all(runId) as never;
  } finally {
    db.close();
  }
}

/** A prompt's manifest record has one image per guidance scale, each hashed, seeded and scored, and keeps the best-scored one at images/<id>.png. */
export function expectBestKept(p: { id: string; candidates: { guidance_scale: number; sha256?: string; seed: number; score?: number }[]; kept: { score: number; path: string } | null }, scales: number[]): void {
  expect(p.candidates.map((c) => c.guidance_scale)).toEqual(scales);
  for (const c of p.candidates) {
    expect(c.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(typeof c.seed).toBe("number");
    expect(typeof c.score).toBe("number");
  }
  expect(p.kept?.score).toBe(Math.max(...p.candidates.map((c) => c.score!)));
  expect(p.kept!.path).toBe(`images/${p.id}.png`);
}

/** Polls a condition every 200 ms until it holds or ms pass; whether it held. */
export async function until(what: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) if (what()) return true;
  return what();
}

/** Parquet files of these rows, written by pyarrow (the project's venv) as a trainer's pipeline would: one Python start for all. */
export async function writeParquet(files: Record<string, unknown[]>): Promise<void> {
  const script = "import json, sys, pyarrow as pa, pyarrow.parquet as pq\nfor f, rows in json.load(sys.stdin).items(): pq.write_table(pa.Table.from_pylist(rows), f)";
  await execa(join(ROOT, ".venv/bin/python"), ["-c", script], { input: JSON.stringify(files) });
}
