// Overhead: the tiny pipeline (images and responses) through the orchestrator vs
// bench/direct_pipeline.py, one Python process running the same worker code in a plain
// sequential loop with the same items, seeds, batch sizes and CPU threads. Both start from
// the same prebuilt tiny models (the tiny cache) and an empty store. Each size runs `repeat` times
// (default 5, 3 at 512 prompts), the two
// alternating (which goes first swaps every time) so drift in the machine's speed hits both;
// reported are medians: wall times, the ratio of each pair, the orchestrator's worker start
// (until the first stage starts, and the slowest worker's process start and model load)
// and stage times, the direct loop's load and compute times, and a fit of the difference
// as a fixed start cost plus a cost per item (an item is one model-call item: an image, an
// image score, an answer or an answer score). Targets: under 1 ms per item; ratio <= 1.05
// at 512 prompts.
import { execa } from "execa";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { writePrompts } from "./memory.mjs";
import { log, PYTHON, readRecords, ROOT, table, tempDir, writeResult } from "./lib.mjs";

const { loadExperiment } = await import(join(ROOT, "dist/config/load.js"));
const { planImages } = await import(join(ROOT, "dist/plan/image-plan.js"));
const { toModelSpec, modelSpecJson } = await import(join(ROOT, "dist/workers/model-spec.js"));
const { batchSizeOf, responseScorers } = await import(join(ROOT, "dist/config/schema.js"));

/** configs/tiny.yaml with its own prompts and only the stages that scale with them. */
function experimentFor(dir, prompts) {
  writePrompts(join(dir, "prompts.jsonl"), prompts);
  const tiny = parse(readFileSync(join(ROOT, "configs/tiny.yaml"), "utf8"));
  const used = new Set([tiny.stages.images.generator, tiny.stages.images.scorer, ...tiny.stages.responses.responders, tiny.stages.responses.scorer]);
  const e = {
    ...tiny,
    name: "bench-overhead",
    workers: Object.fromEntries(Object.entries(tiny.workers).filter(([n]) => used.has(n))),
    stages: { images: { ...tiny.stages.images, prompts: "prompts.jsonl", limit: undefined }, responses: tiny.stages.responses },
  };
  delete e.stages.images.limit;
  const path = join(dir, "e.yaml");
  writeFileSync(path, stringify(e));
  return path;
}

/** A fresh store (the tiny models, built once, are in the machine's tiny cache). */
function freshStore(dir, name) {
  const root = join(dir, name);
  mkdirSync(root, { recursive: true });
  return root;
}

function workFile(dir, configPath, store) {
  const loaded = loadExperiment(configPath);
  const { workers, stages } = loaded.config;
  const w = (name) => ({ name, kind: workers[name].kind, model: modelSpecJson(toModelSpec(workers[name].model, loaded.baseDir)), batch: batchSizeOf(workers[name]) });
  const d = stages.responses.decoding;
  const work = {
    store,
    device: "cpu",
    cpu_threads: workers[stages.images.generator].runtime.cpu_threads ?? null,
    seed: loaded.config.seed,
    generator: w(stages.images.generator),
    scorer: w(stages.images.scorer),
    responders: stages.responses.responders.map((n) => w(n)),
    response_scorer: w(responseScorers(stages.responses)[0].worker),
    decoding: { max_new_tokens: d.max_new_tokens, do_sample: d.do_sample, temperature: d.temperature ?? 0, top_p: d.top_p ?? 0, top_k: d.top_k ?? 0, repetition_penalty: 0, num_samples: d.num_samples },
    candidates: planImages(stages.images, loaded.prompts, loaded.config.seed, loaded.config.seed_policy),
  };
  const path = join(dir, "work.json");
  writeFileSync(path, JSON.stringify(work));
  return path;
}

async function orchestrated(configPath, store) {
  const t0 = performance.now();
  const r = await execa("node", [join(ROOT, "bin/orchestrate.js"), "run", configPath, "--store", store, "--run-id", "bench", "--json"], { reject: false, env: { HF_HUB_OFFLINE: "1" } });
  const wall = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`overhead: the orchestrated run failed: ${r.stderr.split("\n").slice(-3).join(" ")}`);
  const events = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const stage = (s) => events.find((e) => e.type === "stage.finished" && e.stage === s);
  const manifest = JSON.parse(readFileSync(join(store, "runs", "bench", "manifest.json"), "utf8"));
  const items = ["images", "responses"].reduce((n, s) => n + manifest.stages[s].cache.computed, 0);
  const ready = events.filter((e) => e.type === "worker.ready");
  const at = (e) => Date.parse(e.ts) / 1000;
  const started = events.find((e) => e.type === "run.started");
  const firstStage = events.find((e) => e.type === "stage.started");
  return {
    wall_s: wall,
    // What the first stage waited for: its own workers (the others load meanwhile).
    first_stage_start_s: at(firstStage) - at(started),
    workers_ready_s: Math.max(...ready.map((e) => e.seconds)),
    // Workers start together: the slowest one's process start (spawn, imports, listening) and model load.
    worker_process_s: Math.max(...ready.map((e) => e.startup?.listening_s ?? 0)),
    worker_model_load_s: Math.max(...ready.map((e) => (e.startup ? e.startup.serving_s - e.startup.listening_s : 0))),
    images_s: stage("images").seconds,
    responses_s: stage("responses").seconds,
    items,
    // The kept images, from the image records (a prompt a line).
    kept_sha256: [...readRecords(join(store, "runs", "bench"), manifest.stages.images.records)].flatMap((p) => (p.kept ? [p.kept.sha256] : [])).sort(),
  };
}

async function direct(work) {
  const t0 = performance.now();
  const r = await execa(PYTHON, [join(ROOT, "bench/direct_pipeline.py"), work], { reject: false, env: { HF_HUB_OFFLINE: "1", PYTHONDONTWRITEBYTECODE: "1" } });
  const wall = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`overhead: the direct loop failed: ${r.stderr.split("\n").slice(-5).join(" ")}`);
  return { ...JSON.parse(r.stdout.trim().split("\n").at(-1)), process_wall_s: wall };
}

/** Least squares y = a + b x. */
function fit(points) {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const b = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return { a: my - b * mx, b };
}

const median = (xs) => {
  const a = [...xs].sort((x, y) => x - y);
  return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
};

/** One size, `repeat` times, direct and orchestrated alternating which goes first. */
async function measure(root, prompts, repeat) {
  const pairs = [];
  for (let r = 0; r < repeat; r++) {
    const dir = join(root, `p${prompts}-r${r}`);
    mkdirSync(dir);
    const config = experimentFor(dir, prompts);
    const runDirect = async () => {
      log(`overhead: ${prompts} prompts, direct loop (${r + 1}/${repeat})`);
      return direct(workFile(dir, config, freshStore(dir, "direct-store")));
    };
    const runOrch = async () => {
      log(`overhead: ${prompts} prompts, orchestrator (${r + 1}/${repeat})`);
      return orchestrated(config, freshStore(dir, "orch-store"));
    };
    let d, o;
    if (r % 2 === 0) {
      d = await runDirect();
      o = await runOrch();
    } else {
      o = await runOrch();
      d = await runDirect();
    }
    pairs.push({ d, o, ratio: o.wall_s / d.process_wall_s });
  }
  // The breakdown comes from the pair with the median ratio; times and the ratio are medians.
  const mid = [...pairs].sort((a, b) => a.ratio - b.ratio)[Math.floor((pairs.length - 1) / 2)];
  const { d, o } = mid;
  const orchestrator_s = median(pairs.map((p) => p.o.wall_s));
  const direct_s = median(pairs.map((p) => p.d.process_wall_s));
  return {
    prompts,
    items: o.items,
    repeat,
    orchestrator_s,
    direct_s,
    ratio: median(pairs.map((p) => p.ratio)),
    ratios: pairs.map((p) => p.ratio),
    orch_first_stage_start_s: o.first_stage_start_s,
    orch_workers_ready_s: o.workers_ready_s,
    orch_worker_process_s: o.worker_process_s,
    orch_worker_model_load_s: o.worker_model_load_s,
    orch_images_s: o.images_s,
    orch_responses_s: o.responses_s,
    direct_load_s: d.load_s,
    direct_compute_s: d.compute_s,
    direct_phases: d.phases,
    // Beyond compute in the stages: RPC, scheduling, the journal, events and records.
    orch_stage_overhead_s: o.images_s + o.responses_s - d.compute_s,
    same_kept_images: pairs.every((p) => JSON.stringify(p.o.kept_sha256) === JSON.stringify(p.d.kept_sha256)),
  };
}

export async function overheadBench({ quick = false, sizes, repeat } = {}) {
  const list = sizes ?? (quick ? [8, 16] : [32, 128, 512]);
  // Five pairs for the short runs, whose ratio this shared machine's drift moves most; three at 512.
  const timesFor = (prompts) => repeat ?? (quick ? 1 : prompts >= 512 ? 3 : 5);
  const root = tempDir();
  // Build the tiny models once (workers check loads every worker) into the machine's tiny cache, which every store then uses.
  const warm = join(root, "warm");
  mkdirSync(warm);
  const warmConfig = experimentFor(warm, 4);
  const models = join(root, "models-store");
  log("overhead: building the tiny models once");
  const check = await execa("node", [join(ROOT, "bin/orchestrate.js"), "workers", "check", warmConfig, "--store", models], { reject: false });
  if (check.exitCode !== 0) throw new Error(`overhead: workers check failed: ${check.stderr.split("\n").slice(-3).join(" ")}`);
  const rows = [];
  for (const prompts of list) rows.push(await measure(root, prompts, timesFor(prompts)));
  const f = fit(rows.map((r) => ({ x: r.items, y: r.orchestrator_s - r.direct_s })));
  const last = rows.at(-1);
  const targets = {
    per_item_overhead_ms: { target: "< 1", value: f.b * 1000, met: f.b * 1000 < 1 },
    ratio_at_128_prompts: { target: "<= 1.05", value: rows.find((r) => r.prompts === 128)?.ratio ?? null, met: (rows.find((r) => r.prompts === 128)?.ratio ?? Infinity) <= 1.05 },
    ratio_at_512_prompts: { target: "<= 1.05", value: last.prompts === 512 ? last.ratio : null, met: last.prompts === 512 && last.ratio <= 1.05 },
  };
  const path = writeResult("overhead", { quick, repeat: Object.fromEntries(list.map((p) => [p, timesFor(p)])), sizes: rows, fit: { fixed_s: f.a, per_item_ms: f.b * 1000 }, targets });
  console.log(
    `\nOverhead vs a direct Python loop, medians (${path})\n${table(rows.map((r) => ({ prompts: r.prompts, items: r.items, orchestrator_s: r.orchestrator_s, direct_s: r.direct_s, ratio: r.ratio, ratios: r.ratios.map((x) => x.toFixed(2)).join("/"), first_stage_at_s: r.orch_first_stage_start_s, direct_load_s: r.direct_load_s, stage_overhead_s: r.orch_stage_overhead_s, same_images: r.same_kept_images })))}\nfit: ${f.a.toFixed(2)} s fixed + ${(f.b * 1000).toFixed(3)} ms per item`,
  );
  return { rows, fit: f, targets };
}

if (import.meta.url === `file://${process.argv[1]}`) await overheadBench({ quick: process.argv.includes("--quick") });
