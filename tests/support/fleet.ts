// Test workers for whole runs: a Fleet of them on loopback behind the `remote` runtime (what
// the CLI can use too), or a TestRuntime that the orchestrator starts, stops and restarts as
// if they were local processes (crash and restart semantics). Plus the experiment YAML that
// points at them and in-process runs through runExperiment.
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readResumeEvents } from "../../src/cli/commands/resume.js";
import { runExperiment, type RunOptions } from "../../src/pipeline/run.js";
import type { ExitInfo, WorkerHandle, WorkerRuntime, WorkerStartRequest, WorkerState } from "../../src/workers/runtime.js";
import { writePrompts } from "../helpers.js";
import { modelSpecOf, TestWorker, type Faults, type KindName, type ModelConfig } from "./test-worker.js";

export interface WorkerDef {
  kind: KindName;
  model: ModelConfig;
  /** Endpoints (Fleet) or replicas (TestRuntime). */
  replicas?: number;
  batch_size?: number;
  max_restarts?: number;
  item_timeout_s?: number;
  /** Remote: seconds to wait for health (default 10). */
  start_timeout_s?: number;
  faults?: Faults;
  /** TestRuntime: the faults of one start of one replica (start 0 is the first). */
  faultsFor?: (replica: number, start: number) => Faults | undefined;
}
export type WorkerDefs = Record<string, WorkerDef>;

const tiny = (name: string, extra: Partial<ModelConfig> = {}): ModelConfig => ({ source: "tiny", name, ...extra });

/** The workers of a whole pipeline, named and modelled as the tiny configs name them. */
export const STANDARD_WORKERS: WorkerDefs = {
  sd: { kind: "image-generator", model: tiny("sd") },
  pick: { kind: "image-scorer", model: tiny("clip-scorer") },
  a: { kind: "responder", model: tiny("llava", { seed: 1 }) },
  b: { kind: "responder", model: tiny("llava", { seed: 2 }) },
  rm: { kind: "response-scorer", model: tiny("reward") },
  dpo: { kind: "dpo-trainer", model: tiny("llava", { seed: 1 }) },
  pope: { kind: "evaluator", model: tiny("llava", { seed: 1 }) },
};

/** Some standard workers, each with optional changes. */
export function workers(names: string[], changes: Record<string, Partial<WorkerDef>> = {}): WorkerDefs {
  const out: WorkerDefs = {};
  for (const n of names) out[n] = { ...(STANDARD_WORKERS[n] ?? ({} as WorkerDef)), ...changes[n] } as WorkerDef;
  for (const [n, c] of Object.entries(changes)) if (!(n in out)) out[n] = c as WorkerDef;
  return out;
}

function workerYaml(name: string, d: WorkerDef, runtime: string): string {
  const extra = [
    d.batch_size !== undefined ? `batch_size: ${d.batch_size}` : "",
    d.max_restarts !== undefined ? `max_restarts: ${d.max_restarts}` : "",
    d.item_timeout_s !== undefined ? `item_timeout_s: ${d.item_timeout_s}` : "",
  ].filter(Boolean);
  // JSON is YAML: the model entry goes in as it is.
  return `  ${name}: {kind: ${d.kind}, model: ${JSON.stringify(d.model)}, runtime: ${runtime}${extra.map((e) => `, ${e}`).join("")}}`;
}

/** Test workers serving on loopback, used through `runtime: {type: remote, endpoints: [...]}`. */
export class Fleet {
  private readonly endpoints = new Map<string, TestWorker[]>();
  private root: string;

  private constructor(
    readonly defs: WorkerDefs,
    store: string,
  ) {
    this.root = store;
  }

  static async start(store: string, defs: WorkerDefs): Promise<Fleet> {
    const fleet = new Fleet(defs, store);
    for (const [name, d] of Object.entries(defs)) {
      const list = await Promise.all(Array.from({ length: d.replicas ?? 1 }, () => new TestWorker({ kind: d.kind, model: d.model, store, faults: d.faults ? { ...d.faults } : {} }).start()));
      fleet.endpoints.set(name, list);
    }
    return fleet;
  }

  /** One endpoint of a worker. */
  worker(name: string, replica = 0): TestWorker {
    const w = this.endpoints.get(name)?.[replica];
    if (!w) throw new Error(`no test worker ${name}#${replica}`);
    return w;
  }

  replicas(name: string): TestWorker[] {
    return this.endpoints.get(name) ?? [];
  }

  /** Model calls made so far: of one worker (all its endpoints), or of every worker. */
  calls(name?: string): number {
    const names = name ? [name] : [...this.endpoints.keys()];
    return names.reduce((n, w) => n + this.replicas(w).reduce((m, r) => m + r.modelCalls, 0), 0);
  }

  /** Model calls per worker, e.g. {sd: 2, pick: 1, ...}. */
  callsByWorker(): Record<string, number> {
    return Object.fromEntries([...this.endpoints.keys()].map((n) => [n, this.calls(n)]));
  }

  /** Every worker reads and writes this store from now on. */
  set store(root: string) {
    this.root = root;
    for (const list of this.endpoints.values()) for (const w of list) w.store = root;
  }

  get store(): string {
    return this.root;
  }

  /** Another model behind the same endpoints: the config's entry and what the workers serve. */
  setModel(name: string, model: ModelConfig): void {
    this.defs[name] = { ...this.defs[name]!, model };
    for (const w of this.replicas(name)) w.spec = modelSpecOf(model);
  }

  /** Clears every worker's faults. */
  heal(): void {
    for (const list of this.endpoints.values()) for (const w of list) w.faults = {};
  }

  /** The `workers:` block of an experiment using these endpoints. */
  yaml(): string {
    const lines = Object.entries(this.defs).map(([name, d]) => workerYaml(name, d, `{type: remote, endpoints: [${this.replicas(name).map((w) => w.address).join(", ")}], start_timeout_s: ${d.start_timeout_s ?? 10}}`));
    return `workers:\n${lines.join("\n")}\n`;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.endpoints.values()].flat().map((w) => w.stop()));
  }
}

class TestHandle implements WorkerHandle {
  state: WorkerState = "SERVING";
  readonly exited: Promise<ExitInfo>;
  readonly runtimeInfo: Record<string, unknown>;
  private exit: ExitInfo | null = null;
  private done!: (e: ExitInfo) => void;

  constructor(
    readonly name: string,
    readonly kind: WorkerHandle["kind"],
    readonly worker: TestWorker,
    readonly logPath: string,
    readonly pid: number,
  ) {
    this.exited = new Promise((resolve) => (this.done = resolve));
    this.runtimeInfo = { type: "test", endpoint: worker.address };
    worker.onDeath = () => this.finish({ exitCode: null, signal: "SIGKILL" });
  }

  get address(): string {
    return this.worker.address;
  }

  private finish(e: ExitInfo): void {
    if (this.exit) return;
    this.exit = e;
    this.state = e.signal ? "FAILED" : "STOPPED";
    appendFileSync(this.logPath, `--- test worker ${this.name} ${e.signal ? `killed by ${e.signal}` : `exited ${e.exitCode}`}\n`);
    this.done(e);
  }

  exitInfo(): ExitInfo | null {
    return this.exit;
  }

  async stop(): Promise<ExitInfo> {
    if (!this.exit) {
      this.state = "STOPPING";
      await this.worker.stop();
      this.finish({ exitCode: 0, signal: null });
    }
    return this.exit!;
  }

  kill(): void {
    this.worker.kill();
  }
}

/**
 * A runtime whose "processes" are test workers in this process: the orchestrator starts,
 * stops and (max_restarts) restarts them as local workers; a worker that dies (a dieAfter
 * fault, kill()) exits as killed by SIGKILL. Pass it as RunOptions.runtime; configs name
 * `runtime: {type: local, device: cpu}` (see runtimeYaml).
 */
export class TestRuntime implements WorkerRuntime {
  /** Every worker started, in order (restarts included). */
  readonly started: { name: string; replica: number; worker: TestWorker }[] = [];
  private pids = 0;

  constructor(readonly defs: WorkerDefs) {}

  async start(req: WorkerStartRequest, signal?: AbortSignal): Promise<WorkerHandle> {
    if (signal?.aborted) throw new Error(`start of ${req.name} cancelled`);
    const def = this.defs[req.name];
    const starts = this.started.filter((s) => s.name === req.name && s.replica === req.replica).length;
    const faults = def?.faultsFor ? def.faultsFor(req.replica, starts) : def?.faults;
    const m = req.config.model as unknown as ModelConfig;
    const model: ModelConfig = { source: m.source, name: m.name, id: m.id, revision: m.revision, path: m.path, seed: m.seed, type: m.type, dtype: m.dtype };
    appendFileSync(req.logPath, `--- ${new Date().toISOString()} starting ${req.name}: test worker (replica ${req.replica})\n`);
    const worker = await new TestWorker({ kind: req.config.kind as KindName, model, store: req.storeRoot, faults: faults ? { ...faults } : {} }).start();
    this.started.push({ name: req.name, replica: req.replica, worker });
    return new TestHandle(req.name, req.config.kind, worker, req.logPath, -1000 - this.pids++);
  }

  /** The workers started for a worker name (every replica and restart). */
  of(name: string): TestWorker[] {
    return this.started.filter((s) => s.name === name).map((s) => s.worker);
  }

  calls(name?: string): number {
    return this.started.filter((s) => !name || s.name === name).reduce((n, s) => n + s.worker.modelCalls, 0);
  }

  /** The `workers:` block for these definitions (they run as local CPU workers). */
  yaml(): string {
    const lines = Object.entries(this.defs).map(([name, d]) =>
      workerYaml(name, d, "{type: local, device: cpu}").replace(/}$/, d.replicas !== undefined ? `, replicas: ${d.replicas}}` : "}"),
    );
    return `workers:\n${lines.join("\n")}\n`;
  }
}

// -- experiments -----------------------------------------------------------------------------

export interface ExperimentOptions {
  name?: string;
  seed?: number;
  /** The first n prompts of configs/prompts/tiny.jsonl (default 3), then extra lines. */
  prompts?: number;
  extraPrompts?: string[];
  /** The `workers:` block (Fleet.yaml() or TestRuntime.yaml()). */
  workers: string;
  /** The `stages:` entries, each line indented by two spaces. */
  stages: string;
  file?: string;
}

/** Writes prompts.jsonl and the experiment into dir; returns the experiment's path. */
export function writeExperiment(dir: string, o: ExperimentOptions): string {
  writePrompts(dir, o.prompts ?? 3, o.extraPrompts);
  const path = join(dir, o.file ?? "experiment.yaml");
  writeFileSync(path, `name: ${o.name ?? "fast-test"}\nseed: ${o.seed ?? 11}\n${o.workers}stages:\n${o.stages.replace(/\n*$/, "\n")}`);
  return path;
}

/** A YAML flow mapping of defaults with some keys changed (values are YAML fragments; null drops a key). */
function flow(defaults: Record<string, string>, changes: Record<string, string | number | null>): string {
  const merged: Record<string, string | number | null> = { ...defaults, ...changes };
  return `{${Object.entries(merged)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ")}}`;
}

type Changes = Record<string, string | number | null>;

/** Stage entries using the standard workers; any key can be changed, e.g. STAGE.images({guidance_scales: "[5, 7]"}). */
export const STAGE = {
  images: (c: Changes = {}) => `  images: ${flow({ prompts: "prompts.jsonl", generator: "sd", scorer: "pick", guidance_scales: "[5, 9]", steps: "2", size: "32" }, c)}`,
  responses: (c: Changes = {}) => `  responses: ${flow({ responders: "[a, b]", decoding: "{max_new_tokens: 16}", scorer: "rm", pairs: "{drop_truncated: false}" }, c)}`,
  train: (c: Changes = {}) => `  train: ${flow({ trainer: "dpo", lora: "{r: 4, alpha: 8, dropout: 0.0}", dpo: "{beta: 0.1}", optim: "{lr: 0.001, max_steps: 3, batch_size: 1}" }, c)}`,
  evaluate: (c: Changes = {}) => `  evaluate: ${flow({ evaluator: "pope", benchmarks: "[{type: smoke-pope, name: smoke-pope}]" }, c)}`,
};

// -- runs ------------------------------------------------------------------------------------

export type Event = Record<string, unknown> & { type: string };

export interface CacheCounts {
  hits: number;
  computed: number;
  model_calls: number;
}

export interface StageRecord {
  status: string;
  counts: Record<string, number>;
  cache?: CacheCounts;
  /** The stage's per-item records file (records/<stage>.jsonl). */
  records?: { path: string; count: number; bytes: number; sha256: string };
  [k: string]: unknown;
}

export interface Manifest {
  run_id: string;
  status: string;
  cache: string;
  error?: { code: string; message: string };
  config: { file: string; sha256: string; resolved: Record<string, unknown> };
  workers: Record<string, { kind: string; replicas: number; requeues: { replica: number; items: number; reason: string }[]; info: Record<string, unknown>; fingerprint: unknown; runtime: Record<string, unknown> }>;
  stages: Record<string, StageRecord>;
  outputs: { dataset?: { sha256: string; pairs: number }; adapter_sha256?: string; kept_images: { records: string; sha256: string }; eval?: unknown[] };
  [k: string]: unknown;
}

export interface RunOutput {
  status: string;
  runId: string;
  runDir: string;
  manifest: Manifest;
  events: Event[];
  error: unknown;
  /** The warnings the run emitted. */
  warnings: string[];
}

export function readEvents(path: string): Event[] {
  const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.trim());
  const out: Event[] = [];
  lines.forEach((l, i) => {
    try {
      out.push(JSON.parse(l) as Event);
    } catch (e) {
      // A last line cut short by a killed orchestrator is left out, as `resume` does.
      if (i !== lines.length - 1) throw e;
    }
  });
  return out;
}

export function readManifest(store: string, runId: string): Manifest {
  return JSON.parse(readFileSync(join(store, "runs", runId, "manifest.json"), "utf8")) as Manifest;
}

function output(store: string, runId: string, result: { status: string; runDir: string; error?: unknown }): RunOutput {
  const events = readEvents(join(result.runDir, "events.jsonl"));
  return {
    status: result.status,
    runId,
    runDir: result.runDir,
    manifest: readManifest(store, runId),
    events,
    error: result.error,
    warnings: events.filter((e) => e.type === "warning").map((e) => String(e.message)),
  };
}

export type RunIn = Pick<RunOptions, "until" | "cache" | "runtime" | "signal"> & { runId: string };

/** One run through runExperiment in this process (as `orchestrate run` makes it). */
export async function runIn(config: string, store: string, o: RunIn): Promise<RunOutput> {
  const result = await runExperiment({ configPath: config, storeRoot: store, runId: o.runId, until: o.until, cache: o.cache, runtime: o.runtime, signal: o.signal });
  return output(store, o.runId, result);
}

/** `orchestrate resume <run-id>` in this process: the earlier attempt's events and config, its stages and cache mode. */
export async function resumeIn(store: string, runId: string, o: Pick<RunOptions, "runtime" | "signal"> = {}): Promise<RunOutput> {
  const before = readManifest(store, runId);
  // Read as the CLI reads them (the per-item events the records hold left out).
  const events = readResumeEvents(join(store, "runs", runId, "events.jsonl"));
  const started = events.find((e) => e.type === "run.started") as { stages?: string[]; cache?: string } | undefined;
  const cache = started?.cache === "off" || started?.cache === "own-run" ? "own-run" : "use";
  const result = await runExperiment({
    configPath: before.config.file,
    storeRoot: store,
    runId,
    until: started?.stages?.at(-1) as RunOptions["until"],
    cache,
    runtime: o.runtime,
    signal: o.signal,
    resume: { events, configSha256: before.config.sha256 },
  });
  return output(store, runId, result);
}

/** Events of one type. */
export function ofType(events: Event[], type: string): Event[] {
  return events.filter((e) => e.type === type);
}

/** hits + computed of a stage: every item it has. */
export function itemsOf(m: Manifest, stage: string): number {
  const c = m.stages[stage]!.cache!;
  return c.hits + c.computed;
}
