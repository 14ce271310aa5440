// Memory: the orchestrator's peak RSS on a real run of 10,000 image candidates (2,500
// prompts x 4 guidance scales through the tiny generator and scorer, --until images).
// The peak is the process's own maxRSS, written at exit by a preloaded module, so a spike
// at the very end (manifest, report) is counted too. Target: under 300 MB.
import { execa } from "execa";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { log, ROOT, table, tempDir, writeResult } from "./lib.mjs";

export function writePrompts(path, n) {
  const base = readFileSync(join(ROOT, "configs/prompts/tiny.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const lines = Array.from({ length: n }, (_, i) => ({ ...base[i % base.length], id: `bench-${String(i).padStart(5, "0")}` }));
  writeFileSync(path, `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
}

const PEAK = `process.on("exit", () => { require("node:fs").writeFileSync(process.env.PDS_DPO_PEAK_RSS_FILE, String(process.resourceUsage().maxRSS * 1024)); });`;

export async function memoryBench({ quick = false } = {}) {
  const prompts = quick ? 250 : 2500;
  const dir = tempDir();
  writePrompts(join(dir, "prompts.jsonl"), prompts);
  const local = { type: "local", device: "cpu", cpu_threads: 1 };
  const experiment = {
    name: "bench-memory",
    seed: 1,
    workers: {
      sd: { kind: "image-generator", model: { source: "tiny", name: "sd" }, runtime: local, batch_size: 8 },
      pick: { kind: "image-scorer", model: { source: "tiny", name: "clip-scorer" }, runtime: local, batch_size: 64 },
    },
    stages: { images: { prompts: "prompts.jsonl", generator: "sd", scorer: "pick", guidance_scales: [5, 7, 9, 11], steps: 1, size: 32 } },
  };
  writeFileSync(join(dir, "e.yaml"), stringify(experiment));
  writeFileSync(join(dir, "peak.cjs"), PEAK);
  const peakFile = join(dir, "peak-rss");
  log(`memory: ${prompts * 4} candidates through the real CLI`);
  const t0 = performance.now();
  const r = await execa("node", ["--require", join(dir, "peak.cjs"), join(ROOT, "bin", "orchestrate.js"), "run", join(dir, "e.yaml"), "--store", join(dir, "store"), "--run-id", "mem"], {
    reject: false,
    env: { PDS_DPO_PEAK_RSS_FILE: peakFile, HF_HUB_OFFLINE: "1" },
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`memory: the run failed (${r.exitCode}): ${r.stderr.split("\n").slice(-3).join(" ")}`);
  const peak = Number(readFileSync(peakFile, "utf8"));
  const manifest = JSON.parse(readFileSync(join(dir, "store", "runs", "mem", "manifest.json"), "utf8"));
  const row = { candidates: manifest.stages.images.counts.candidates, scored: manifest.stages.images.counts.scored, seconds, peak_rss_mb: peak / 1e6 };
  const targets = { peak_rss_mb: { target: "< 300 (for 10,000 items)", value: row.peak_rss_mb, met: !quick && row.peak_rss_mb < 300 } };
  const path = writeResult("memory", { quick, case: row, targets });
  console.log(`\nOrchestrator memory (${path})\n${table([row])}`);
  return row;
}

if (import.meta.url === `file://${process.argv[1]}`) await memoryBench({ quick: process.argv.includes("--quick") });
