// Decode speed in a worker against in-process: the same greedy requests (same images,
// instructions, batch and token budget) answered by a responder worker over gRPC (started by
// the real local runtime, called by the orchestrator's client) and by the Responder kind's
// own compute in one long-lived Python process (bench/decode.py serve). The model is a
// LLaVA-1.5 of the tiny one's architecture scaled so that a token costs milliseconds on a CPU.
// Both sides stay loaded and warm; rounds interleave, a worker call and a call to each of two
// in-process processes back to back, which goes first rotating every round. A shared machine's
// speed drifts by more than the 3% the target allows, so the ratio is the median of the rounds'
// ratios, each taken between calls seconds apart (the worker's rate over the geometric mean of
// the two in-process rates), not the ratio of two medians taken minutes apart. The second
// in-process process against the first is the control: what two identical processes differ by
// on this machine. The worker's log says how long each call computed on
// its model thread, so time spent around the computation (gRPC, the event loop) shows apart;
// after the rounds, 30 calls with no items time what a call costs with nothing to compute.
// Target: worker_tokens_per_s >= 0.97 x direct_tokens_per_s at the issue's scale (the hidden-512
// model, 5 to 20 ms a decoding step); the hidden-64 model is reported against it too.
//   node bench/decode.mjs [--quick] [--rounds N] [--cases 512x4/1,64x2/1] [--device cuda]
//   (--quick: shorter answers, two rounds, one torch thread only; --cases: hidden x layers / threads)
import { execa } from "execa";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ContentStore, PYTHON, ROOT, WorkerSchema, log, refBlob, table, tempDir, writeResult } from "./lib.mjs";

const { LocalRuntime } = await import(join(ROOT, "dist", "workers", "local-runtime.js"));
const { WorkerClient } = await import(join(ROOT, "dist", "workers", "clients.js"));
const { RespondRequest, ResponderServiceClient } = await import(join(ROOT, "dist", "gen", "pdsdpo", "v1", "responder.js"));

const SCRIPT = join(ROOT, "bench", "decode.py");
const median = (xs) => {
  const a = [...xs].sort((x, y) => x - y);
  return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
};

/** bench/decode.py serve: the in-process side, loaded once; `round()` answers the work once more, timed. */
async function inProcess(work) {
  const child = execa(PYTHON, [SCRIPT, "serve", work], { env: { HF_HUB_OFFLINE: "1", PYTHONPATH: join(ROOT, "python_workers") }, reject: false, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let stderr = "";
  child.stderr.on("data", (b) => (stderr = (stderr + b).slice(-4000)));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`bench/decode.py serve exited: ${stderr.split("\n").slice(-3).join(" | ")}`);
    return JSON.parse(value);
  };
  await next(); // {"ready": true}: loaded, and the untimed first answer given
  return {
    pid: child.pid,
    round: async () => {
      child.stdin.write("run\n");
      return next();
    },
    stop: async () => {
      child.stdin.end();
      await child;
    },
  };
}

async function python(args) {
  const r = await execa(PYTHON, [SCRIPT, ...args], { env: { HF_HUB_OFFLINE: "1", PYTHONPATH: join(ROOT, "python_workers") }, reject: false });
  if (r.exitCode !== 0) throw new Error(`bench/decode.py ${args[0]} exited ${r.exitCode}: ${r.stderr.split("\n").slice(-3).join(" | ")}`);
  return r.stdout;
}

/** One PNG of random pixels (an unfiltered RGB PNG, as tests/support/png.ts writes). */
async function pngs(n) {
  const out = await execa(PYTHON, ["-c", `import io,sys,numpy as np; from PIL import Image
for i in range(${n}):
    b=io.BytesIO(); Image.fromarray(np.random.default_rng(i).integers(0,256,(48,48,3),dtype=np.uint8)).save(b,format="PNG"); sys.stdout.write(b.getvalue().hex()+"\\n")`]);
  return out.stdout.trim().split("\n").map((h) => Buffer.from(h, "hex"));
}

export async function decodeBench({ quick = false, rounds: roundsOpt, cases: only, device = "cpu" } = {}) {
  const batch = 4;
  const maxNewTokens = quick ? 16 : 48;
  const rounds = roundsOpt ?? (quick ? 2 : 15);
  const n = 2 * batch; // two batches: the pipelined side sends them as two calls
  const root = tempDir("pdsdpo-decode-");
  const store = new ContentStore(root);
  const images = (await pngs(n)).map((b) => store.put(b, "image/png"));
  const decoding = { maxNewTokens, doSample: false, numSamples: 1 };
  const items = images.map((ref, i) => ({ id: `q${i}`, image: refBlob(ref), instruction: `Describe picture ${i} in detail.`, seed: i, decoding }));
  const request = RespondRequest.fromPartial({ items, maxBatchSize: batch });
  // The same items as the orchestrator sends them: a call per batch, two in flight per replica
  // (src/pipeline/worker-pool.ts), so one call's start and end overlap the other's computing.
  const halves = [items.slice(0, batch), items.slice(batch)].map((part) => RespondRequest.fromPartial({ items: part, maxBatchSize: batch }));
  // The scaled model with one torch thread (what the tiny configs give each worker) and with
  // torch's default (every core); and a small one whose decoding is bound by Python's per-token
  // work, as a GPU's is by kernel launches: where sharing the GIL with gRPC's threads would show.
  const cases = [];
  const all = [{ hidden: 512, layers: 4, cpuThreads: 1 }, { hidden: 512, layers: 4, cpuThreads: undefined }, { hidden: 64, layers: 2, cpuThreads: 1 }];
  const name = (c) => `${c.hidden}x${c.layers}/${c.cpuThreads ?? "default"}`;
  const picked = only ? all.filter((c) => only.includes(name(c))) : quick ? all.filter((c) => c.cpuThreads) : all;
  for (const { hidden, layers, cpuThreads } of picked) {
    const modelDir = join(root, `model-${hidden}x${layers}`);
    log(`decode: building a LLaVA of hidden size ${hidden} and ${layers} layers in ${modelDir}`);
    await python(["build", modelDir, "--hidden", String(hidden), "--layers", String(layers)]);
    // The same request for the in-process run, as proto JSON.
    const work = join(root, `work-${hidden}-${cpuThreads ?? "default"}.json`);
    writeFileSync(work, JSON.stringify({ model: { source: "MODEL_SOURCE_PATH", id: "decode-bench", path: modelDir }, store: root, device, cpu_threads: cpuThreads, requests: [RespondRequest.toJSON(request)] }));
    const runtime = { type: "local", device, ...(cpuThreads ? { cpu_threads: cpuThreads } : {}) };
    const config = WorkerSchema.parse({ kind: "responder", model: { source: "path", path: modelDir }, runtime });
    // A log per case: the model thread's account of each call is read back from it below.
    const logPath = join(root, `decode-${name({ hidden, layers, cpuThreads }).replace("/", "-")}.log`);
    const handle = await new LocalRuntime().start({ name: "decode", replica: 0, config, baseDir: root, storeRoot: root, logPath });
    const client = new WorkerClient("decode", handle.address, handle.connection);
    // Two in-process sides: the second is the control, the spread between two identical processes.
    const direct = await inProcess(work);
    const twin = await inProcess(work);
    const worker = [];
    const pipelined = [];
    const local = [];
    const control = [];
    const emptyCalls = [];
    try {
      // The model thread logs one line per call, in the order the calls came (the worker
      // computes one at a time, first come first served): `calls` numbers them.
      let calls = 0;
      const call = async (req) => {
        let tokens = 0;
        calls += 1;
        for await (const msg of client.stream(ResponderServiceClient, "respond", (c, deadline) => c.respond(req, undefined, { deadline }), { deadlineMs: 600_000 })) {
          if (msg.event?.$case === "response") {
            const r = msg.event.value;
            if (r.error) throw new Error(`decode: ${r.id}: ${r.error.message}`);
            tokens += r.numTokens;
          }
        }
        return tokens;
      };
      // `reqs` at once: the whole request as one call, or its halves both in flight.
      const viaWorker = async (reqs) => {
        const t0 = performance.now();
        const cpu0 = cpuOf(handle.pid);
        const line = calls;
        const tokens = (await Promise.all(reqs.map(call))).reduce((a, b) => a + b, 0);
        return { tokens, seconds: (performance.now() - t0) / 1000, cpu_seconds: cpuOf(handle.pid) - cpu0, line };
      };
      // One untimed call first (allocator and caches warm; decode.py serve does the same), then alternating rounds.
      await viaWorker([request]);
      for (let r = 0; r < rounds; r++) {
        log(`decode: hidden ${hidden}, ${cpuThreads ?? "default"} thread(s), round ${r + 1}/${rounds}`);
        // Each side goes first, second, third and fourth in turn.
        const sides = [
          async () => worker.push(await viaWorker([request])),
          async () => local.push(await direct.round()),
          async () => pipelined.push(await viaWorker(halves)),
          async () => control.push(await twin.round()),
        ];
        for (let k = 0; k < sides.length; k++) await sides[(r + k) % sides.length]();
      }
      // A call with no items, the same way: what one call costs with nothing to compute (the
      // client, gRPC both ways, the model thread's hand-off), paid once per call whatever its size.
      const empty = RespondRequest.fromPartial({ items: [], maxBatchSize: batch });
      for (let i = 0; i < 30; i++) {
        const t0 = performance.now();
        await call(empty);
        emptyCalls.push(performance.now() - t0);
      }
    } finally {
      client.close();
      await Promise.allSettled([handle.stop(), direct.stop(), twin.stop()]);
    }
    // The worker's own account of each call (its log): the wall and the model thread's CPU of the
    // call's work alone, which tells a slower computation from time spent around it (gRPC, the loop).
    const computed = [...readFileSync(logPath, "utf8").matchAll(/call computed in ([\d.]+)s \(([\d.]+)s of CPU on the model thread\)/g)];
    for (const w of worker) Object.assign(w, { compute_seconds: Number(computed[w.line][1]), model_thread_cpu_seconds: Number(computed[w.line][2]) });
    const rate = (r) => r.tokens / r.seconds;
    const perToken = (runs) => median(runs.map((r) => (1000 * r.cpu_seconds) / r.tokens));
    // Each round's worker call against both in-process calls of the round (their geometric mean):
    // two references a round halve the reference's share of the round's noise.
    const against = (runs) => runs.map((w, i) => rate(w) / Math.sqrt(rate(local[i]) * rate(control[i])));
    const ratios = against(worker);
    const pipelinedRatios = against(pipelined);
    const controls = control.map((c, i) => rate(c) / rate(local[i]));
    const c = {
      hidden_size: hidden,
      layers,
      cpu_threads: cpuThreads ?? "default",
      worker_tokens_per_s: median(worker.map(rate)),
      direct_tokens_per_s: median(local.map(rate)),
      // The median of the rounds' ratios (each round's four calls back to back).
      ratio: median(ratios),
      round_ratios: ratios,
      // The same with the request's two batches as two calls both in flight, as the pipeline calls a worker.
      pipelined_tokens_per_s: median(pipelined.map(rate)),
      pipelined_ratio: median(pipelinedRatios),
      pipelined_round_ratios: pipelinedRatios,
      // The same for a second in-process process against the first: what "no difference" looks like here.
      control_ratio: median(controls),
      control_round_ratios: controls,
      worker_cpu_ms_per_token: perToken(worker),
      direct_cpu_ms_per_token: perToken(local),
      // Of the worker's wall per call, the share its model thread computed.
      worker_compute_share: median(worker.filter((w) => w.compute_seconds).map((w) => w.compute_seconds / w.seconds)),
      worker_model_thread_cpu_ms_per_token: median(worker.filter((w) => w.model_thread_cpu_seconds).map((w) => (1000 * w.model_thread_cpu_seconds) / w.tokens)),
      // The median wall of a call with no items, and its share of a worker call here.
      empty_call_ms: median(emptyCalls),
      empty_call_share: median(emptyCalls) / 1000 / median(worker.map((w) => w.seconds)),
      worker_runs: worker,
      pipelined_runs: pipelined,
      direct_runs: local,
      control_runs: control,
    };
    cases.push(c);
  }
  const [one] = cases;
  const worst = (list) => (list.length ? Math.min(...list.map((c) => c.ratio)) : null);
  const issueScale = cases.filter((c) => c.hidden_size === 512);
  const small = cases.filter((c) => c.hidden_size !== 512);
  const path = writeResult("decode", {
    quick,
    device,
    model: { architecture: "LLaVA-1.5 (CLIP vision tower, Llama LM) with the tiny tokenizer", weights: "random, end-of-sequence suppressed" },
    requests: { items: n, batch, max_new_tokens: maxNewTokens, greedy: true },
    rounds,
    // The headline: the scaled model with one torch thread; every case is in `cases`.
    worker_tokens_per_s: one.worker_tokens_per_s,
    direct_tokens_per_s: one.direct_tokens_per_s,
    ratio: one.ratio,
    ratio_is: "the median of the rounds' ratios; a round is one worker call, the same work as two calls both in flight (pipelined_ratio) and two in-process calls (two processes) back to back, and its ratio the worker's rate over the geometric mean of the two in-process rates",
    cases,
    load_average: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number),
    // The issue's target is set at its scale (a step of 5 to 20 ms: the hidden-512 model); the
    // small model is the stress case, where a call's fixed cost weighs most, reported beside it.
    targets: {
      ratio: { target: ">= 0.97 (every case of the hidden-512 model: 5 to 20 ms a decoding step)", value: worst(issueScale), met: worst(issueScale) >= 0.97 },
      ratio_python_bound: { target: ">= 0.97 (the hidden-64 model, about 2 ms a step: not the issue's scale)", value: worst(small), met: worst(small) >= 0.97 },
    },
  });
  const rows = cases.map((c) => ({ hidden: c.hidden_size, threads: c.cpu_threads, "worker tok/s": c.worker_tokens_per_s, "in-process tok/s": c.direct_tokens_per_s, ratio: c.ratio, "round ratios": c.round_ratios.map((x) => x.toFixed(2)).join("/"), pipelined: c.pipelined_ratio, control: c.control_ratio, "worker cpu ms/tok": c.worker_cpu_ms_per_token, "of it model thread": c.worker_model_thread_cpu_ms_per_token, "in-process cpu ms/tok": c.direct_cpu_ms_per_token, "compute share": c.worker_compute_share, "empty call ms": c.empty_call_ms }));
  console.log(`\nDecode in a worker against in-process (${path})\n${table(rows)}`);
  return { cases };
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
function cpuOf(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // --rounds N; --cases 512x4/1,64x2/1 (hidden x layers / torch threads, "default" for torch's own);
  // --device cuda: both sides on the GPU (the same script where a GPU is; fp32, the scaled models).
  const arg = (flag) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : undefined);
  const device = arg("--device") ?? "cpu";
  if (!["cpu", "cuda"].includes(device)) {
    console.error(`decode: --device must be cpu or cuda, not ${device}`);
    process.exit(2);
  }
  await decodeBench({ quick: process.argv.includes("--quick"), rounds: arg("--rounds") ? Number(arg("--rounds")) : undefined, cases: arg("--cases")?.split(","), device });
}
