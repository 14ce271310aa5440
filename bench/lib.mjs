// What the benchmarks share: the compiled control plane (dist/), the machine they ran on,
// result files, a table printer, and a pool of bench-only null scorer workers started by
// the real process runtime (launchWorker) and driven by the real WorkerPool.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..");
export const RESULTS = join(ROOT, "bench", "results");
export const PYTHON = join(ROOT, ".venv", "bin", "python");

const dist = (p) => import(join(ROOT, "dist", p));
export const { WorkerPool, listSource } = await dist("pipeline/worker-pool.js");
export const { ItemCache, scoreOutcome } = await dist("pipeline/item-cache.js");
export const { Journal } = await dist("store/journal.js");
export const { ContentStore } = await dist("store/cas.js");
export const { EventBus } = await dist("events/bus.js");
export const { eventsFileReporter } = await dist("events/reporters/json-lines.js");
export const { launchWorker } = await dist("workers/process-worker.js");
export const { ImageScorerServiceClient } = await dist("gen/pdsdpo/v1/image_scorer.js");
export const { imageScoreKeys, OPS } = await dist("plan/item-keys.js");
export const { chunks } = await dist("util/async-queue.js");
export const { WorkerSchema } = await dist("config/schema.js");
export const { blobRef } = await dist("pipeline/stage-util.js");
export const { readRecords } = await dist("store/records.js");

export function tempDir(prefix = "pdsdpo-bench-") {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function machine() {
  let python = "";
  try {
    python = execFileSync(PYTHON, ["--version"], { encoding: "utf8" }).trim();
  } catch {
    python = "unavailable";
  }
  let commit = "";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    // Changes to tracked code beyond that commit (results files aside) make the figures another code's.
    const changed = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: ROOT, encoding: "utf8" })
      .split("\n")
      .filter((l) => l.trim() && !l.includes("bench/results/"));
    if (changed.length) commit += "-dirty";
  } catch {
    commit = "";
  }
  return { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? "", memory_gib: Math.round(totalmem() / 2 ** 30), node: process.version, python, git_commit: commit, date: new Date().toISOString() };
}

export function writeResult(name, body) {
  mkdirSync(RESULTS, { recursive: true });
  const path = join(RESULTS, `${name}.json`);
  writeFileSync(path, `${JSON.stringify({ benchmark: name, machine: machine(), ...body }, null, 2)}\n`);
  return path;
}

export function table(rows) {
  if (rows.length === 0) return "";
  const cols = Object.keys(rows[0]);
  const cell = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 3 : 1)) : String(v));
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals) => vals.map((v, i) => v.padStart(width[i])).join("  ");
  return [line(cols), line(width.map((w) => "-".repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join("\n");
}

export const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

/** A runtime that starts bench/null_scorer.py through the real process launcher. */
export function nullScorerRuntime(args) {
  return {
    start: (req, signal) =>
      launchWorker(
        req,
        {
          file: PYTHON,
          args: [join(ROOT, "bench", "null_scorer.py"), "--parent-pid", String(process.pid), "--store", req.storeRoot, ...args],
          env: { PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
          runtimeInfo: { type: "bench-null-scorer" },
          startTimeoutS: 300,
        },
        signal,
      ),
  };
}

/** A started pool of `replicas` null scorers, with a journal and an events file like a run's. */
export async function nullScorerPool({ replicas, delayMs = 0, readImages = false, batchSize, storeRoot }) {
  const dir = tempDir();
  const root = storeRoot ?? join(dir, "store");
  mkdirSync(join(dir, "logs"), { recursive: true });
  // Through the schema, as a config's worker is: every default the pool reads is filled.
  const worker = WorkerSchema.parse({
    kind: "image-scorer",
    model: { source: "path", path: "bench:null-scorer" },
    runtime: { type: "local", device: "cpu", start_timeout_s: 300 },
    replicas,
    batch_size: batchSize,
    item_timeout_s: 600,
  });
  const loaded = { config: { workers: { null: worker }, stages: {} }, baseDir: dir };
  const bus = new EventBus();
  bus.subscribe(eventsFileReporter(join(dir, "events.jsonl")));
  const args = [...(delayMs ? ["--delay-ms", String(delayMs)] : []), ...(readImages ? ["--read-images"] : [])];
  const pool = new WorkerPool(nullScorerRuntime(args), loaded, { storeRoot: root, logPath: (w) => join(dir, "logs", `${w}.log`) }, bus);
  const t0 = performance.now();
  await pool.startAll(["null"]);
  const startS = (performance.now() - t0) / 1000;
  const journal = Journal.open(root);
  const store = new ContentStore(root);
  const cache = new ItemCache(journal, store, "bench", "use", bus);
  return { pool, bus, journal, store, cache, startS, dir, root, close: async () => (await pool.stopAll(), journal.close()) };
}

/**
 * Scores every item through the pool as the image stage does: fixed batches, one in
 * flight per replica, each result announced on the bus and journaled (a call's results in one transaction).
 */
export async function scoreThrough(ctx, items, batchSize, blobOf) {
  const { pool, bus, cache } = ctx;
  let done = 0;
  await pool.runBatches(
    "null",
    listSource(chunks(items, batchSize)),
    (b) => b.length,
    async (replica, batch) => {
      const keyed = imageScoreKeys(replica.fingerprint, batch.map((c) => ({ candidate: c, sha256: c.image.sha256 })));
      const keyOf = new Map(keyed.map((k) => [k.id, k]));
      // Never reused (cache.batch would): every batch must reach the worker to be measured.
      cache.modelCall("images");
      const req = { items: batch.map((c) => ({ id: c.id, prompt: c.prompt, image: blobOf(c) })), maxBatchSize: batch.length };
      const stream = replica.client.stream(ImageScorerServiceClient, "Score", (c, deadline) => c.score(req, { deadline }), { deadlineMs: 600_000 });
      for await (const msg of stream) {
        if (msg.event?.$case !== "score") continue;
        const s = msg.event.value;
        bus.emit({ type: "image.scored", id: s.id, worker: replica.name, score: s.score, components: s.components });
        cache.computed("images", OPS.imageScore, keyOf.get(s.id) ?? { id: s.id, key: null }, scoreOutcome(s), []);
        done++;
      }
      // The call's results in one transaction, as the stages' batch runner commits them.
      cache.flush();
    },
  );
  return done;
}

export { blobRef as refBlob };
