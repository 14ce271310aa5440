// experiment.yaml -> a validated, resolved config. Steps, each pure but the file reads:
// parse YAML (syntax errors located) -> zod schema (issues located by key path and line)
// -> cross references (worker names and kinds, model families) -> files it names (prompts,
// model directories, interpreters, DeepSpeed configs, benchmarks) -> warnings (unpinned
// revisions).
import { existsSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, isAbsolute, resolve } from "node:path";
import { LineCounter, parseDocument, type Document } from "yaml";
import type { z } from "zod";
import { ConfigError, type ConfigIssue } from "../errors.js";
import { NO_PROMPTS, readPrompts, type PromptList } from "./prompts.js";
import { datasetFormatOf, readDataset } from "../dataset/read.js";
import { sizeProblem } from "../plan/sweep.js";
import { benchmarkFiles, loadBenchmarks } from "../eval/load.js";
import { familyProblem } from "./families.js";
import { ExperimentSchema, isHubRef, referencedEntries, WORKER_REFERENCES, type ExperimentConfig } from "./schema.js";
import { deepestPath, formatPath, lineOf, pathAt, type KeyPath } from "./yaml-locate.js";

export interface LoadedConfig {
  /** Absolute path of the YAML file. */
  file: string;
  /** Directory that relative paths in the config are resolved against. */
  baseDir: string;
  /** The YAML text as read, for the manifest. */
  text: string;
  sha256: string;
  config: ExperimentConfig;
  /** In file order; parsed when asked for (a PromptFile) or an array. */
  prompts: PromptList;
  /** sha256 of the prompts file as read. */
  promptsSha256: string;
  /** What is valid but unwise (an unpinned hub revision), located like issues. */
  warnings: ConfigIssue[];
}

export function resolvePath(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

/** Deepest nesting of maps and lists a config may have (its own schema needs about 6). */
export const MAX_YAML_DEPTH = 64;
/** yaml's guard against alias expansion ("billion laughs"): alias uses times the aliases inside what they name. */
export const MAX_ALIAS_COUNT = 100;

const tooDeep = `nested more than ${MAX_YAML_DEPTH} levels deep`;
/** A key path of a too-deep spot: its first levels only. */
const deepPath = (path: KeyPath) => `${formatPath(path.slice(0, 4))}${path.length > 4 ? "…" : ""}`;

export function parseExperiment(text: string): { config?: ExperimentConfig; issues: ConfigIssue[]; doc?: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const offset = err.pos[0];
    const path = pathAt(doc, offset);
    const line = lines.linePos(offset).line;
    // yaml composes nodes recursively: a document nested thousands deep overflows its stack.
    if (/call stack/i.test(err.message)) {
      const deep = deepestPath(doc, MAX_YAML_DEPTH);
      return { issues: [{ path: deepPath(deep?.path ?? path), message: `YAML ${tooDeep}`, line: deep ? lines.linePos(deep.offset).line : line }], lines };
    }
    const message = err.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    return { issues: [{ path: formatPath(path), message: `YAML syntax error: ${message}`, line }], lines };
  }
  const deep = deepestPath(doc, MAX_YAML_DEPTH);
  if (deep) return { issues: [{ path: deepPath(deep.path), message: `YAML ${tooDeep}`, line: lines.linePos(deep.offset).line }], doc, lines };
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (e) {
    const message = /alias/i.test((e as Error).message)
      ? `YAML aliases expand too far (more than ${MAX_ALIAS_COUNT} expansions; a "billion laughs" document?)`
      : `YAML: ${(e as Error).message.split("\n")[0]!}`;
    return { issues: [{ path: "", message }], doc, lines };
  }
  const parsed = ExperimentSchema.safeParse(raw);
  if (!parsed.success) return { issues: zodIssues(parsed.error.issues, raw, doc, lines), doc, lines };
  return { config: parsed.data, issues: crossReferences(parsed.data, doc, lines), doc, lines };
}

function zodIssues(issues: z.core.$ZodIssue[], raw: unknown, doc: Document, lines: LineCounter): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        out.push({ path: formatPath(path), message: "unknown key", line: lineOf(doc, lines, path) });
      }
      continue;
    }
    out.push({ path: formatPath(issue.path), message: describe(issue, valueAt(raw, issue.path)), line: lineOf(doc, lines, issue.path) });
  }
  return out;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let cur = raw;
  for (const seg of path) cur = cur !== null && typeof cur === "object" ? (cur as Record<PropertyKey, unknown>)[seg] : undefined;
  return cur;
}

function describe(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code === "invalid_type" && value === undefined) return `required (expected ${issue.expected})`;
  return issue.message.replace(/^Invalid input: /, "");
}

function crossReferences(config: ExperimentConfig, doc: Document, lines: LineCounter): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [name, worker] of Object.entries(config.workers)) {
    const problem = familyProblem(worker.kind, worker.model);
    if (problem) {
      const path = ["workers", name, "model", problem.key];
      issues.push({ path: formatPath(path), message: problem.message, line: lineOf(doc, lines, path) });
    }
    const rt = worker.runtime;
    if (rt.type !== "remote" && rt.devices) {
      const path = ["workers", name, "runtime", "devices"];
      const gpus = config.stages.train?.trainer === name ? config.stages.train.gpus : undefined;
      if (rt.device === "cpu") issues.push({ path: formatPath(path), message: "GPUs for a worker on device cpu: set device cuda (or auto), or drop devices", line: lineOf(doc, lines, path) });
      else if (gpus !== undefined && gpus !== rt.devices.length) issues.push({ path: formatPath(path), message: `${rt.devices.length} device(s) for a trainer of train.gpus ${gpus}: give one per process`, line: lineOf(doc, lines, path) });
    }
  }
  for (const ref of WORKER_REFERENCES) {
    for (const { name, index } of referencedEntries(config.stages, ref)) {
      const path = index !== undefined ? ["stages", ref.stage, ref.field, index, ...(ref.key ? [ref.key] : [])] : ["stages", ref.stage, ref.field];
      const worker = config.workers[name];
      const line = lineOf(doc, lines, path);
      if (!worker) {
        const known = Object.keys(config.workers).join(", ") || "none";
        issues.push({ path: formatPath(path), message: `no worker named '${name}' (workers: ${known})`, line });
      } else if (worker.kind !== ref.kind) {
        issues.push({ path: formatPath(path), message: `worker '${name}' is of kind ${worker.kind}; this needs kind ${ref.kind}`, line });
      }
    }
  }
  return issues;
}

/** Loads and validates everything `run` needs before any worker starts; throws ConfigError. */
export function loadExperiment(file: string): LoadedConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError([{ path: "", message: code === "ENOENT" ? `config file not found: ${file}` : `cannot read ${file}: ${code}` }]);
  }
  const { config, issues, doc, lines } = parseExperiment(text);
  if (!config || issues.length > 0) throw new ConfigError(issues);
  return completeExperiment(config, { file: abs, baseDir: dirname(abs), text, lineOf: (key) => lineOf(doc!, lines, key) });
}

/** Checks the files a parsed config names and reads its prompts; throws ConfigError. */
export function completeExperiment(
  config: ExperimentConfig,
  src: { file: string; baseDir: string; text: string; lineOf?: (key: (string | number)[]) => number | undefined },
): LoadedConfig {
  const { baseDir } = src;
  const at = (key: (string | number)[]) => src.lineOf?.(key);
  const fileIssues: ConfigIssue[] = [];
  const promptsKey = ["stages", "images", "prompts"];
  const images = config.stages.images;
  // A train-only experiment has no prompts.
  const read = images ? readPrompts(resolvePath(baseDir, images.prompts), formatPath(promptsKey)) : { prompts: NO_PROMPTS, issues: [], sha256: "" };
  // A loop, not push(...spread): a prompts file can have a hundred thousand bad lines.
  for (const i of read.issues) fileIssues.push({ ...i, line: at(promptsKey) });
  for (const [name, worker] of Object.entries(config.workers)) {
    const tls = worker.runtime.type === "remote" ? worker.runtime.tls : undefined;
    for (const [field, file] of Object.entries(tls ?? {})) {
      const key = ["workers", name, "runtime", "tls", field];
      const p = resolvePath(baseDir, file);
      if (!existsSync(p)) fileIssues.push({ path: formatPath(key), message: `file not found: ${p}`, line: at(key) });
    }
  }
  for (const { key, file, what } of namedFiles(config)) {
    const p = resolvePath(baseDir, file);
    if (!existsSync(p)) fileIssues.push({ path: formatPath(key), message: `${what} not found: ${p}`, line: at(key) });
  }
  const ds = config.stages.train?.deepspeed;
  const dsKey = ["stages", "train", "deepspeed"];
  if (ds && existsSync(resolvePath(baseDir, ds))) {
    const problem = deepspeedProblem(readFileSync(resolvePath(baseDir, ds), "utf8"));
    if (problem) fileIssues.push({ path: formatPath(dsKey), message: `${resolvePath(baseDir, ds)}: ${problem}`, line: at(dsKey) });
  }
  const train = config.stages.train;
  const datasetKey = ["stages", "train", "dataset"];
  // The most pairs a sweep can draw from, where known before the run: a dataset's rows, or at most pairs_per_image a prompt.
  let available: { pairs: number; what: string } | undefined;
  if (images && config.stages.responses && !train?.dataset) {
    const prompts = images.limit ? Math.min(images.limit, read.prompts.length) : read.prompts.length;
    available = { pairs: prompts * config.stages.responses.pairs.pairs_per_image, what: `pairs at most (${prompts} prompts, pairs_per_image ${config.stages.responses.pairs.pairs_per_image})` };
  }
  if (train?.dataset && existsSync(resolvePath(baseDir, train.dataset))) {
    // Every row and image now, not after the trainer has loaded.
    const file = resolvePath(baseDir, train.dataset);
    const read = readDataset(file, datasetFormatOf(train), train.image_root ? resolvePath(baseDir, train.image_root) : undefined);
    for (const problem of read.issues) fileIssues.push({ path: formatPath(datasetKey), message: `${read.file}: ${problem}`, line: at(datasetKey) });
    // A parquet file's rows are read at the run (deferred): its size is checked then.
    if (read.issues.length === 0 && !read.deferred) available = { pairs: read.pairs.length, what: `pairs in ${read.file}` };
  }
  const sizesKey = ["sweep", "train.data_size"];
  const tooLarge = config.sweep && available ? sizeProblem(config.sweep, available.pairs, available.what) : null;
  if (tooLarge) fileIssues.push({ path: formatPath(sizesKey), message: tooLarge, line: at(sizesKey) });
  if (config.stages.evaluate) {
    // Every benchmark file's format, now rather than after the evaluator has loaded.
    for (const i of loadBenchmarks(config.stages.evaluate, baseDir).issues) {
      const key = ["stages", "evaluate", "benchmarks", i.index, ...i.key];
      fileIssues.push({ path: formatPath(key), message: i.message, line: at(key) });
    }
  }
  if (fileIssues.length > 0) throw new ConfigError(fileIssues);
  const warnings = unpinnedRevisions(config).map(({ key, revision }) => ({
    path: formatPath(key),
    message: `'${revision}' is not a commit sha: the hub may serve other weights tomorrow; pin the 40-hex commit for reproducible runs`,
    line: at(key),
  }));
  const prompts = images?.limit ? read.prompts.limit(images.limit) : read.prompts;
  return { file: src.file, baseDir, text: src.text, sha256: createHash("sha256").update(src.text).digest("hex"), config, prompts, promptsSha256: read.sha256, warnings };
}

/** Pure: every file or directory the config names (besides prompts and TLS files), with its key. */
export function namedFiles(config: ExperimentConfig): { key: (string | number)[]; file: string; what: string }[] {
  const out: { key: (string | number)[]; file: string; what: string }[] = [];
  for (const [name, worker] of Object.entries(config.workers)) {
    if (worker.model.source === "path") out.push({ key: ["workers", name, "model", "path"], file: worker.model.path!, what: "model directory" });
    if (worker.runtime.type === "local" && worker.runtime.python) out.push({ key: ["workers", name, "runtime", "python"], file: worker.runtime.python, what: "Python interpreter" });
    const tok = worker.model.tokenizer;
    if (tok && !isHubRef(tok)) out.push({ key: ["workers", name, "model", "tokenizer"], file: tok, what: "tokenizer directory" });
  }
  const { train, evaluate } = config.stages;
  if (train?.deepspeed) out.push({ key: ["stages", "train", "deepspeed"], file: train.deepspeed, what: "DeepSpeed config" });
  if (train?.dataset) out.push({ key: ["stages", "train", "dataset"], file: train.dataset, what: "dataset" });
  evaluate?.benchmarks.forEach((b, i) => {
    for (const f of benchmarkFiles(b)) out.push({ ...f, key: ["stages", "evaluate", "benchmarks", i, ...f.key] });
  });
  return out;
}

const COMMIT = /^[0-9a-f]{40}$/;

/** Pure: the hub revisions (a model's, a tokenizer's `id@revision`) that are not commit shas (a branch like main, or a tag), with their key paths. */
export function unpinnedRevisions(config: ExperimentConfig): { key: (string | number)[]; revision: string }[] {
  const out: { key: (string | number)[]; revision: string }[] = [];
  for (const [name, w] of Object.entries(config.workers)) {
    if (w.model.source === "hf" && !COMMIT.test(w.model.revision ?? "")) out.push({ key: ["workers", name, "model", "revision"], revision: w.model.revision ?? "" });
    const tok = w.model.tokenizer;
    if (tok && isHubRef(tok) && !COMMIT.test(tok.slice(tok.lastIndexOf("@") + 1))) out.push({ key: ["workers", name, "model", "tokenizer"], revision: tok.slice(tok.lastIndexOf("@") + 1) });
  }
  return out;
}

/** Pure: why a DeepSpeed config cannot drive the trainer's ZeRO training, if it cannot. */
export function deepspeedProblem(text: string): string | undefined {
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${(e as Error).message})`;
  }
  const stage = (c as { zero_optimization?: { stage?: unknown } } | null)?.zero_optimization?.stage;
  if (typeof c !== "object" || c === null || Array.isArray(c)) return "not a JSON object";
  // ZeRO-3 shards the LoRA weights over the ranks, and the adapter is saved from rank 0's part.
  if (![0, 1, 2].includes(stage as number)) return "zero_optimization.stage must be 0, 1 or 2 (under ZeRO-3 rank 0 would save a partial adapter)";
  return undefined;
}
