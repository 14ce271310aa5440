// `npm run bench`: every benchmark in turn, each writing bench/results/<name>.json and
// printing its table. Benchmarks, not tests: they time, they do not assert; the JSON
// records each target and whether it was met.
//   npm run bench [-- --quick] [-- --only overhead,throughput,transfer,memory,startup,decode,gpu,gpu-twin] [-- --repeat N]
import { execa } from "execa";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { log, RESULTS, ROOT } from "./lib.mjs";
import { decodeBench } from "./decode.mjs";
import { memoryBench } from "./memory.mjs";
import { overheadBench } from "./overhead.mjs";
import { startupBench } from "./startup.mjs";
import { throughputBench } from "./throughput.mjs";
import { transferBench } from "./transfer.mjs";

const ALL = ["throughput", "transfer", "memory", "overhead", "startup", "decode", "gpu", "gpu-twin"];
const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, only: { type: "string" }, repeat: { type: "string" } } });
const only = values.only ? values.only.split(",") : ALL;
const unknown = only.filter((n) => !ALL.includes(n));
if (unknown.length) {
  console.error(`bench: unknown benchmark ${unknown.join(", ")}; known: ${ALL.join(", ")}`);
  process.exit(2);
}
if (!existsSync(join(ROOT, "dist", "cli", "main.js")) || !existsSync(join(ROOT, ".venv", "bin", "python"))) {
  console.error("bench: not set up; run `bash scripts/setup.sh` first");
  process.exit(2);
}

const quick = values.quick;
// How many times the overhead benchmark runs each size (medians are reported).
const repeat = values.repeat === undefined ? undefined : Number(values.repeat);
if (repeat !== undefined && !(Number.isInteger(repeat) && repeat >= 1)) {
  console.error(`bench: --repeat must be a whole number of at least 1, got '${values.repeat}'`);
  process.exit(2);
}
const runners = {
  throughput: () => throughputBench({ quick }),
  transfer: () => transferBench({ quick }),
  memory: () => memoryBench({ quick }),
  overhead: () => overheadBench({ quick, repeat }),
  startup: () => startupBench({ quick }),
  decode: () => decodeBench({ quick }),
  // The GPU script's reduced CPU mode, so it is known to work where there is no GPU.
  "gpu-twin": async () => {
    const r = await execa("node", [join(ROOT, "bench/gpu/paper-twin.mjs"), "--cpu", RESULTS], { reject: false, stdout: "inherit", stderr: "inherit" });
    if (r.exitCode !== 0) throw new Error(`bench/gpu/paper-twin.mjs --cpu exited ${r.exitCode}`);
  },
  gpu: async () => {
    const r = await execa("bash", [join(ROOT, "bench/gpu/run.sh"), "--cpu", RESULTS], { reject: false, stdout: "inherit", stderr: "inherit" });
    if (r.exitCode !== 0) throw new Error(`bench/gpu/run.sh --cpu exited ${r.exitCode}`);
    const res = JSON.parse(readFileSync(join(RESULTS, "gpu-cpu.json"), "utf8"));
    console.log(`\nGPU script, reduced CPU mode (${join(RESULTS, "gpu-cpu.json")}): done in ${res.total_s.toFixed(1)} s`);
  },
};

let failed = 0;
for (const name of only) {
  const t0 = performance.now();
  try {
    await runners[name]();
    log(`${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } catch (e) {
    failed++;
    console.error(`bench: ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}
process.exit(failed ? 1 : 0);
