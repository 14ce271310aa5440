#!/usr/bin/env node
// The paper's configuration on its twins (configs/paper-twin.yaml) run on a device, every
// stage's time and peak memory recorded: for the GPU machine when one is lent (about 2
// minutes there; at most 10). Each worker is placed on GPU 0 (runtime.devices) in the
// paper's precisions (fp16 inference, 4-bit responders with fp16 compute, bf16 and TF32
// training, the image generator seeded on the GPU). Memory is sampled every 250 ms: the
// GPU's (nvidia-smi) and the workers' resident memory (/proc), and attributed to the stage
// running then. --cpu runs the same on the CPU (how it is known to work where no GPU is).
//   node bench/gpu/paper-twin.mjs [--cpu] [OUT_DIR]     writes OUT_DIR/gpu-paper-twin-<mode>.json
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse, stringify } from "yaml";

const ROOT = resolve(import.meta.dirname, "../..");
const args = process.argv.slice(2);
const mode = args.includes("--cpu") ? "cpu" : "cuda";
const out = resolve(args.find((a) => !a.startsWith("--")) ?? join(ROOT, "bench/results"));

/** Pure: the twin config for a device: placement, precisions and seeding as the paper ran. */
export function forDevice(config, mode) {
  const c = structuredClone(config);
  for (const w of Object.values(c.workers)) {
    w.runtime = mode === "cuda" ? { type: "local", device: "cuda", devices: [0], start_timeout_s: 600 } : { type: "local", device: "cpu", cpu_threads: 1 };
    if (mode === "cuda") w.model.dtype = w.kind === "dpo-trainer" ? "bfloat16" : w.kind === "image-scorer" ? "float32" : "float16";
  }
  if (mode === "cuda") {
    Object.assign(c.stages.train.optim, { precision: "bf16", tf32: true });
    c.stages.images.generator_device = "model";
  }
  c.name = `paper-twin-${mode}`;
  return c;
}

function gpuMemoryMiB() {
  try {
    return Math.max(...execFileSync("nvidia-smi", ["--query-gpu=memory.used", "--format=csv,noheader,nounits"], { encoding: "utf8" }).trim().split("\n").map(Number));
  } catch {
    return null;
  }
}

function rssMiB(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "pdsdpo-gpu-twin-"));
  mkdirSync(join(dir, "prompts"));
  copyFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), join(dir, "prompts/tiny.jsonl"));
  // The benchmark fixtures the twin names relative to itself.
  cpSync(join(ROOT, "configs/benchmarks"), join(dir, "benchmarks"), { recursive: true });
  const config = forDevice(parse(readFileSync(join(ROOT, "configs/paper-twin.yaml"), "utf8")), mode);
  writeFileSync(join(dir, "experiment.yaml"), stringify(config));
  const t0 = Date.now();
  const run = spawn("node", [join(ROOT, "bin/orchestrate.js"), "run", join(dir, "experiment.yaml"), "--store", join(dir, "store"), "--run-id", "twin", "--json"], {
    env: { ...process.env, HF_HUB_OFFLINE: "1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const stages = {};
  const pids = new Set();
  let current = null;
  let buf = "";
  const events = [];
  run.stdout.on("data", (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let e;
      try {
        e = JSON.parse(line);
      } catch {
        continue;
      }
      events.push(e);
      if (e.type === "worker.ready") pids.add(e.pid);
      if (e.type === "stage.started") stages[(current = e.stage)] = { started_s: (Date.now() - t0) / 1000, peak_gpu_mib: null, peak_workers_rss_mib: 0 };
      if (e.type === "stage.finished") Object.assign(stages[e.stage], { seconds: e.seconds, status: e.status, counts: e.counts });
    }
  });
  const sampler = setInterval(() => {
    if (!current) return;
    const s = stages[current];
    const gpu = gpuMemoryMiB();
    if (gpu !== null) s.peak_gpu_mib = Math.max(s.peak_gpu_mib ?? 0, gpu);
    s.peak_workers_rss_mib = Math.max(s.peak_workers_rss_mib, rssMiB(pids));
  }, 250);
  const code = await new Promise((r) => run.on("exit", (c) => r(c)));
  clearInterval(sampler);
  const finished = events.find((e) => e.type === "run.finished");
  const result = {
    benchmark: "gpu-paper-twin",
    mode,
    gpu: mode === "cuda" ? execFileSync("nvidia-smi", ["--query-gpu=name,memory.total", "--format=csv,noheader"], { encoding: "utf8" }).trim() : null,
    exit_code: code,
    status: finished?.status ?? "unknown",
    ...(finished?.error ? { error: finished.error } : {}),
    total_s: (Date.now() - t0) / 1000,
    stages,
    workers: events.filter((e) => e.type === "worker.ready").map((e) => ({ worker: e.worker, seconds: e.seconds, model_class: e.info?.model?.modelClass, device: e.info?.device })),
  };
  mkdirSync(out, { recursive: true });
  const file = join(out, `gpu-paper-twin-${mode}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`${file}: ${result.status} in ${result.total_s.toFixed(1)} s`);
  for (const [name, s] of Object.entries(stages)) console.log(`  ${name.padEnd(9)} ${String(s.seconds?.toFixed(1) ?? "?").padStart(6)} s  gpu ${s.peak_gpu_mib ?? "-"} MiB  workers ${s.peak_workers_rss_mib.toFixed(0)} MiB`);
  process.exitCode = code === 0 ? 0 : 1;
}

if (process.argv[1] === import.meta.filename) await main();
