// Memory: the orchestrator's peak RSS on real runs of 10,000, 100,000 and 1,000,000 image
// candidates (prompts x 4 guidance scales), then the response stage on every kept image (two
// responders, one response scorer), through the real CLI, the journal, the store and the run
// directory, against bench-only no-op workers (bench/null_generator.py, bench/null_scorer.py,
// bench/null_responses.py) on the remote runtime, so a million items take minutes. The peak is
// the process's own maxRSS, written at exit by a preloaded module, so a spike at the very end
// (manifest, report) is counted too. Targets: under 300 MB at 1,000,000 items, and a manifest
// whose size does not grow with the item count.
import { execa } from "execa";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { log, PYTHON, ROOT, table, tempDir, writeResult } from "./lib.mjs";

export function writePrompts(path, n) {
  const base = readFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ ...base[i % base.length], id: `bench-${String(i).padStart(7, "0")}` }));
  writeFileSync(path, `${lines.join("\n")}\n`);
}

const PEAK = `process.on("exit", () => { require("node:fs").writeFileSync(process.env.PDS_DPO_PEAK_RSS_FILE, String(process.resourceUsage().maxRSS * 1024)); });
if (process.env.PDS_DPO_RSS_TRACE) setInterval(() => { const m = process.memoryUsage(); require("node:fs").appendFileSync(process.env.PDS_DPO_RSS_TRACE, JSON.stringify({ t: process.uptime(), rss: m.rss / 1e6, heap: m.heapUsed / 1e6, total: m.heapTotal / 1e6, external: m.external / 1e6, buffers: m.arrayBuffers / 1e6 }) + "\\n"); }, 2000).unref();`;
const SCALES = [5, 7, 9, 11];

/** A no-op worker on a free port; resolves with its endpoint once it listens. */
async function startNull(script, args) {
  const proc = execa(PYTHON, [join(ROOT, "bench", script), "--parent-pid", String(process.pid), ...args], { reject: false, buffer: false, env: { PYTHONUNBUFFERED: "1" } });
  const endpoint = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      for (const line of out.split("\n")) {
        try {
          const e = JSON.parse(line);
          if (e.event === "listening") resolve(`127.0.0.1:${e.port}`);
        } catch {}
      }
    });
    proc.on("exit", (code) => reject(new Error(`${script} exited (${code}) before listening`)));
  });
  return { proc, endpoint };
}

async function oneCase(items) {
  const prompts = items / SCALES.length;
  const dir = tempDir();
  writePrompts(join(dir, "prompts.jsonl"), prompts);
  // The model "directories" the config names (the no-op workers load nothing from them).
  for (const m of ["null-generator", "null-scorer", "null-responder-a", "null-responder-b", "null-response-scorer"]) mkdirSync(join(dir, m));
  const gen = await startNull("null_generator.py", ["--model-path", join(dir, "null-generator")]);
  const score = await startNull("null_scorer.py", ["--hashed-scores", "--model-path", join(dir, "null-scorer")]);
  const [ra, rb] = await Promise.all(["a", "b"].map((x) => startNull("null_responses.py", ["--kind", "responder", "--model-path", join(dir, `null-responder-${x}`)])));
  const rs = await startNull("null_responses.py", ["--kind", "response-scorer", "--model-path", join(dir, "null-response-scorer")]);
  const procs = [gen, score, ra, rb, rs];
  try {
    const remote = (endpoint) => ({ type: "remote", endpoints: [endpoint], start_timeout_s: 120 });
    const experiment = {
      name: "bench-memory",
      seed: 1,
      workers: {
        sd: { kind: "image-generator", model: { source: "path", path: "null-generator" }, runtime: remote(gen.endpoint), batch_size: 256, item_timeout_s: 600 },
        pick: { kind: "image-scorer", model: { source: "path", path: "null-scorer" }, runtime: remote(score.endpoint), batch_size: 256, item_timeout_s: 600 },
        a: { kind: "responder", model: { source: "path", path: "null-responder-a" }, runtime: remote(ra.endpoint), batch_size: 128, item_timeout_s: 600 },
        b: { kind: "responder", model: { source: "path", path: "null-responder-b" }, runtime: remote(rb.endpoint), batch_size: 128, item_timeout_s: 600 },
        rm: { kind: "response-scorer", model: { source: "path", path: "null-response-scorer" }, runtime: remote(rs.endpoint), batch_size: 256, item_timeout_s: 600 },
      },
      stages: {
        images: { prompts: "prompts.jsonl", generator: "sd", scorer: "pick", guidance_scales: SCALES, steps: 1, size: 4 },
        responses: { responders: ["a", "b"], scorer: "rm", decoding: { max_new_tokens: 32, do_sample: false, num_samples: 1 } },
      },
    };
    writeFileSync(join(dir, "e.yaml"), stringify(experiment));
    writeFileSync(join(dir, "peak.cjs"), PEAK);
    const peakFile = join(dir, "peak-rss");
    log(`memory: ${items} candidates (${prompts} prompts) through the real CLI`);
    const t0 = performance.now();
    const r = await execa("node", [...(process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean), "--require", join(dir, "peak.cjs"), join(ROOT, "bin", "orchestrate.js"), "run", join(dir, "e.yaml"), "--store", join(dir, "store"), "--run-id", "mem"], {
      reject: false,
      env: { PDS_DPO_PEAK_RSS_FILE: peakFile, HF_HUB_OFFLINE: "1", ...(process.env.BENCH_NODE_ARGS ? { PDS_DPO_RSS_TRACE: join(dir, "rss.jsonl") } : {}) },
    });
    const seconds = (performance.now() - t0) / 1000;
    // With BENCH_NODE_ARGS (a profile, --trace-gc), the orchestrator's own output is kept.
    if (process.env.BENCH_NODE_ARGS) writeFileSync(join(dir, "node.log"), `${r.stdout}\n${r.stderr}`), log(`orchestrator output: ${join(dir, "node.log")}`);
    if (r.exitCode !== 0) throw new Error(`memory: the run failed (${r.exitCode}): ${r.stderr.split("\n").slice(-3).join(" ")}`);
    const runDir = join(dir, "store", "runs", "mem");
    const manifestPath = join(runDir, "manifest.json");
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    const counts = manifest.stages.images.counts;
    const answers = manifest.stages.responses.counts;
    return {
      items,
      candidates: counts.candidates,
      scored: counts.scored,
      kept: counts.kept,
      answers: answers.answered,
      pairs: answers.pairs,
      seconds,
      peak_rss_mb: Number(readFileSync(peakFile, "utf8")) / 1e6,
      manifest_bytes: statSync(manifestPath).size,
      records_mb: (statSync(join(runDir, manifest.stages.images.records.path)).size + statSync(join(runDir, manifest.stages.responses.records.path)).size) / 1e6,
    };
  } finally {
    for (const p of procs) p.proc.kill();
    // A million items leave gigabytes (events, records, journal, links): kept only for a profile.
    if (!process.env.BENCH_NODE_ARGS) rmSync(dir, { recursive: true, force: true });
  }
}

export async function memoryBench({ quick = false, items } = {}) {
  const sizes = items ? [items] : quick ? [10_000] : [10_000, 100_000, 1_000_000];
  const cases = [];
  for (const n of sizes) cases.push(await oneCase(n));
  const largest = cases.at(-1);
  const manifestSizes = cases.map((c) => c.manifest_bytes);
  const targets = {
    peak_rss_mb: { target: "< 300 at 1,000,000 items", value: largest.peak_rss_mb, met: !quick && largest.items === 1_000_000 && largest.peak_rss_mb < 300 },
    // The same manifest but for counts and hashes: a few bytes of digits, never per item.
    manifest_bytes: { target: "independent of the item count (within 64 bytes)", value: manifestSizes, met: Math.max(...manifestSizes) - Math.min(...manifestSizes) <= 64 },
  };
  const path = writeResult("memory", { quick, peak_rss_mb: Object.fromEntries(cases.map((c) => [c.items, c.peak_rss_mb])), cases, targets });
  console.log(`\nOrchestrator memory (${path})\n${table(cases)}`);
  return cases;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // --items N: one case of N (a quick look; recorded as a quick result).
  const i = process.argv.indexOf("--items");
  const items = i > 0 ? Number(process.argv[i + 1]) : undefined;
  await memoryBench({ quick: process.argv.includes("--quick") || items !== undefined, items });
}
