// One run, start to end: validate -> run directory -> workers -> stages -> manifest.
// Whatever happens, workers are stopped and the manifest and events are written.
import { loadExperiment, resolvePath, type LoadedConfig } from "../config/load.js";
import { STAGES, type StageName } from "../config/schema.js";
import { formatIssue, InterruptedError, OrchestratorError, UsageError } from "../errors.js";
import { EventBus } from "../events/bus.js";
import type { RunEvent } from "../events/types.js";
import { eventsFileReporter } from "../events/reporters/json-lines.js";
import { ManifestCollector } from "../manifest/collector.js";
import { ContentStore } from "../store/cas.js";
import { newRunId, RunDir } from "../store/run-dir.js";
import { gitCommit, orchestratorVersion } from "../util/project.js";
import { defaultRuntime } from "../workers/default-runtime.js";
import type { WorkerRuntime } from "../workers/runtime.js";
import { writeReport } from "../report/write.js";
import { workerSpecDigest } from "../plan/cache-keys.js";
import { Journal } from "../store/journal.js";
import { WorkerInfo } from "../gen/pdsdpo/v1/common.js";
import type { Manifest } from "../manifest/types.js";
import { ItemCache, type CacheMode } from "./item-cache.js";
import { carriedEvents, finishedStages, resultsFromEvents } from "./resume.js";
import { executeStage, type StageContext } from "./stage.js";
import { stageOf } from "./stages/index.js";
import { memoryError, memoryPlanFor } from "./memory-plan.js";
import { startingAt, stoppingAfter } from "./schedule.js";
import { WorkerPool } from "./worker-pool.js";

export interface RunOptions {
  configPath: string;
  /** An already loaded config (replay), instead of reading configPath. */
  loaded?: LoadedConfig;
  replayOf?: string;
  storeRoot: string;
  runId?: string;
  /** Continue this earlier run: its finished stages are kept, the rest run again. */
  resume?: { events: RunEvent[]; configSha256: string };
  until?: StageName;
  bus?: EventBus;
  runtime?: WorkerRuntime;
  signal?: AbortSignal;
  /** --no-cache (and replay): "off". A resumed --no-cache run reuses only its own items ("own-run"). */
  cache?: CacheMode;
}

export interface RunResult {
  runId: string;
  runDir: string;
  status: "succeeded" | "failed";
  manifest: Manifest;
  error?: unknown;
}

/** Pure: the stages a run executes, in order. */
export function stagesToRun(loaded: LoadedConfig, until?: StageName): StageName[] {
  const last = until ? STAGES.indexOf(until) : STAGES.length - 1;
  const configured = STAGES.filter((s, i) => i <= last && loaded.config.stages[s] !== undefined);
  if (until && !configured.includes(until)) throw new UsageError(`--until ${until}: the config has no ${until} stage`);
  return configured;
}

/** Pure: the workers the given stages use, in config order. */
export function workersFor(loaded: LoadedConfig, stages: StageName[]): string[] {
  const used = new Set(stages.flatMap((s) => stageOf(s).workers(loaded.config)));
  return Object.keys(loaded.config.workers).filter((n) => used.has(n));
}

/** How much each later stage lowers the CPU priority (nice) of its CPU workers. */
export const NICE_PER_STAGE = 10;

/**
 * Pure: the CPU priority (nice, 0..19) each worker of `stages` loads its model at. Every
 * worker starts at once; a CPU worker (local or docker, device: cpu) of the k-th stage to
 * run loads at nice min(19, k*10), so its imports and model load never take cores from an
 * earlier stage's compute. Only the load is lowered: calls run at the normal priority.
 * Accelerator workers keep 0: their CPU time feeds the device.
 */
export function startNiceness(loaded: LoadedConfig, stages: StageName[]): Record<string, number> {
  const out: Record<string, number> = {};
  stages.forEach((stage, k) => {
    for (const name of workersFor(loaded, [stage])) {
      if (name in out) continue;
      const rt = loaded.config.workers[name]!.runtime;
      out[name] = rt.type !== "remote" && rt.device === "cpu" ? Math.min(19, k * NICE_PER_STAGE) : 0;
    }
  });
  return out;
}

export async function runExperiment(opts: RunOptions): Promise<RunResult> {
  const loaded = opts.loaded ?? loadExperiment(opts.configPath);
  const stages = stagesToRun(loaded, opts.until);
  const runId = opts.runId ?? newRunId(loaded.config.name, new Date());
  const runDir = new RunDir(opts.storeRoot, runId);
  if (opts.resume && opts.resume.configSha256 !== loaded.sha256) {
    throw new UsageError(`${loaded.file} changed since run ${runId} started (sha256 ${opts.resume.configSha256.slice(0, 12)}, now ${loaded.sha256.slice(0, 12)}); start a new run instead`);
  }
  const done = opts.resume ? finishedStages(opts.resume.events) : [];
  const remaining = stages.filter((s) => !done.includes(s));
  // Before anything is made: a run whose workers cannot fit in the declared GPU memory.
  const memory = memoryPlanFor(loaded, remaining);
  if (memory.problems.length > 0) throw memoryError(memory);
  // Opened first: a store whose journal cannot be used fails before anything is made.
  const journal = Journal.open(opts.storeRoot);
  if (!opts.resume) runDir.create();

  const bus = opts.bus ?? new EventBus();
  const collector = new ManifestCollector({
    runId,
    configFile: loaded.file,
    configSha256: loaded.sha256,
    config: loaded.config,
    // A train-only experiment has no prompts (its dataset is pinned by the train stage's section).
    prompts: loaded.config.stages.images ? { path: resolvePath(loaded.baseDir, loaded.config.stages.images.prompts), sha256: loaded.promptsSha256 } : { path: "", sha256: "" },
    replayOf: opts.replayOf,
    orchestrator: { version: orchestratorVersion(), gitCommit: gitCommit(), node: process.version },
  });
  // A resumed run's manifest starts from the finished stages' events of the earlier attempt
  // (and the Describe of the workers it does not start again).
  const toStart = workersFor(loaded, remaining);
  const carried = opts.resume ? carriedEvents(opts.resume.events, new Set(toStart)) : [];
  for (const e of carried) collector.listener(e);
  bus.subscribe(collector.listener);
  if (opts.resume) {
    // The earlier attempt's events stay on disk beside the new ones; nothing is lost.
    runDir.keepAttempt();
    runDir.writeAtomic(runDir.eventsPath, carried.map((e) => `${JSON.stringify(e)}\n`).join(""));
  }
  bus.subscribe(eventsFileReporter(runDir.eventsPath));
  const writeManifest = () => runDir.writeAtomic(runDir.manifestPath, `${JSON.stringify(collector.build(), null, 2)}\n`);

  const t0 = performance.now();
  const cacheMode = opts.cache ?? "use";
  bus.emit({ type: "run.started", runId, runDir: runDir.path, configFile: loaded.file, configSha256: loaded.sha256, stages, cache: cacheMode });
  for (const w of loaded.warnings) bus.emit({ type: "warning", message: formatIssue(w) });
  writeManifest();
  const signal = opts.signal ?? new AbortController().signal;
  // A worker that fails to start while an earlier stage runs ends the run at once.
  const startFailed = new AbortController();
  const stageSignal = AbortSignal.any([signal, startFailed.signal]);
  // What `plan` predicts cache hits with: the fingerprint each worker configuration last had.
  bus.subscribe((e) => {
    if (e.type === "worker.ready" && e.replica === 0 && e.fingerprint) journal.rememberWorker(workerSpecDigest(loaded.config.workers[e.worker]!), e.fingerprint);
  });
  const store = new ContentStore(opts.storeRoot);
  const pool = new WorkerPool(opts.runtime ?? defaultRuntime(), loaded, { storeRoot: opts.storeRoot, logPath: (w) => runDir.logPath(w) }, bus);
  const cache = new ItemCache(journal, store, runId, cacheMode, bus);
  for (const e of carried) if (e.type === "worker.ready" && e.replica === 0) pool.remember(e.worker, WorkerInfo.fromJSON(e.info));
  const ctx: StageContext = { loaded, bus, store, runDir, pool, signal: stageSignal, cache, results: opts.resume ? resultsFromEvents(opts.resume.events, runDir.path) : {} };
  let error: unknown;
  try {
    // Workers start and stop by the schedule (pipeline/schedule.ts): CPU workers all at once,
    // so the first stage computes while later stages' models load (at a lower CPU priority);
    // accelerator workers just before their first stage, or during the one before where the
    // memory plan lets them. Each stops after its last stage.
    const { usage, schedule } = memory;
    const niceness = startNiceness(loaded, remaining);
    for (const [i, stage] of remaining.entries()) {
      if (signal.aborted) throw new InterruptedError();
      pool.begin(startingAt(schedule, i), signal, () => startFailed.abort(), niceness);
      await pool.ready(usage[i]!);
      await executeStage(stageOf(stage), ctx);
      writeManifest();
      await pool.stop(stoppingAfter(schedule, i));
    }
  } catch (e) {
    // A cancelled call after Ctrl-C is the interruption, not an RPC failure; one cancelled
    // because a worker failed to start reports that start.
    error = signal.aborted ? new InterruptedError() : (pool.startError ?? e);
  } finally {
    await pool.stopAll();
    journal.close();
  }
  const status = error === undefined ? "succeeded" : "failed";
  bus.emit({
    type: "run.finished",
    runId,
    status,
    error: error === undefined ? undefined : { code: error instanceof OrchestratorError ? error.code : "internal", message: error instanceof Error ? error.message : String(error) },
    seconds: (performance.now() - t0) / 1000,
  });
  writeManifest();
  // The report is written whatever happened; a report that cannot be made never fails the run.
  try {
    writeReport(runDir.path);
  } catch (e) {
    bus.emit({ type: "warning", message: `the report could not be written: ${e instanceof Error ? e.message : String(e)}` });
  }
  return { runId, runDir: runDir.path, status, manifest: collector.build(), error };
}
