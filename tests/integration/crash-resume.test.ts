// End to end with real workers and tiny models, once: the orchestrator killed (SIGKILL)
// mid-answering, `orchestrate resume`, then `orchestrate replay` of the finished run. The
// killed run's workers exit on their own (their parent is gone); the resumed run keeps the
// finished images stage and reuses what the killed one journaled (the restarted Python
// workers have the same fingerprint); the replay (every stage recomputed with the cache off,
// in new worker processes) matches it hash for hash: every image, answer and score, the
// dataset and the adapter (CPU). The journal holds each item of the run once, the same items
// as the replay's. (The evaluate stage runs with real workers in tiny-run.test.ts.)
// The same crash at every stage is tested with test workers in tests/stages/resume.test.ts;
// replay's mismatch and refusal cases in tests/stages/replay.test.ts.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { alive, BIN, cli, journalItems, jsonLines, readJson, tempDir, tinyWorkers, until, writePrompts } from "../helpers.js";

type Event = Record<string, unknown>;
type Manifest = {
  status: string;
  cache: string;
  stages: Record<string, { status: string; cache?: { hits: number; computed: number } }>;
  outputs: { dataset: { sha256: string; pairs: number }; adapter_sha256: string };
};

function experiment(dir: string): string {
  writePrompts(dir, 4);
  const path = join(dir, "e.yaml");
  writeFileSync(
    path,
    `name: crash-test
seed: 3
${tinyWorkers(["sd", "pick", "a", "b", "rm", "dpo"], { sd: "batch_size: 2", pick: "batch_size: 4", a: "batch_size: 2", b: "batch_size: 2", rm: "batch_size: 2" })}stages:
  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5, 9], steps: 2, size: 64}
  responses: {responders: [a, b], decoding: {max_new_tokens: 8}, scorer: rm, pairs: {drop_truncated: false}}
  train: {trainer: dpo, lora: {r: 4, alpha: 8, dropout: 0.0}, dpo: {beta: 0.1}, optim: {lr: 0.001, max_steps: 2, batch_size: 1}}
`,
  );
  return path;
}


/** Pids of the worker processes serving this store (from /proc: they name it in their argv; forked ones have their host's, which is no worker). */
function workersOf(store: string): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
        return argv.includes("pds_dpo_workers") && argv.includes(store) && readFileSync(`/proc/${d}/comm`, "utf8").trim() !== "pds-dpo-host";
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe("crash, resume and replay with real workers", () => {
  // Three runs of up to six tiny workers: about 70 s alone on 2 cores, 100 to 200 s beside other files.
  it("a run killed mid-answering: its workers exit; resume finishes it reusing what was journaled; its replay matches every hash; each item journaled once", { timeout: 900_000 }, async () => {
    const dir = tempDir();
    const config = experiment(dir);
    const store = join(dir, "store");

    // Killed once a few answers are computed and some journaled (a call's results are committed
    // together when it ends): the images stage is done, the responses stage runs.
    const proc = execa("node", [BIN, "run", config, "--store", store, "--run-id", "crash", "--json"], { reject: false, timeout: 280_000, env: { HF_HUB_OFFLINE: "1" } });
    let buf = "";
    let killed = false;
    let atKill: number[] = [];
    proc.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      const events = jsonLines(buf.slice(0, buf.lastIndexOf("\n") + 1)) as Event[];
      if (!killed && events.filter((e) => e.type === "response.generated").length >= 3 && journalItems(store, "crash").some((r) => r.op === "response.generate")) {
        killed = true;
        atKill = workersOf(store);
        proc.kill("SIGKILL");
      }
    });
    const first = await proc;
    expect(killed).toBe(true);
    expect(first.signal).toBe("SIGKILL");
    const killedRun = jsonLines(buf) as Event[];
    expect(killedRun.some((e) => e.type === "stage.finished" && e.stage === "images")).toBe(true);
    // Nobody stopped the workers, those still loading included: each notices that its parent is gone and exits.
    const ready = killedRun.filter((e) => e.type === "worker.ready").map((e) => e.pid as number);
    expect(ready.length).toBeGreaterThanOrEqual(5);
    // The image stage's two workers stopped when it ended; the other four were alive.
    const stopped = killedRun.filter((e) => e.type === "worker.stopped").map((e) => e.worker);
    expect(stopped.sort()).toEqual(["pick", "sd"]);
    expect(atKill).toHaveLength(4);
    expect(await until(() => workersOf(store).length === 0 && ready.every((p) => !alive(p)), 20_000), `still alive: ${workersOf(store).join(", ")}`).toBe(true);

    const resumed = await cli(["resume", "crash", "--store", store, "--json"], { timeoutMs: 280_000 });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const events = jsonLines(resumed.stdout) as Event[];
    // The images stage is kept; its workers are not started again, nor are its images made again.
    expect(events.filter((e) => e.type === "worker.ready").map((e) => e.worker).sort()).toEqual(["a", "b", "dpo", "rm"]);
    expect(events.filter((e) => e.type === "image.generated")).toEqual([]);
    const runDir = join(store, "runs", "crash");
    const manifest = readJson<Manifest>(join(runDir, "manifest.json"));
    expect(manifest.status).toBe("succeeded");
    expect(manifest.stages.images!.status).toBe("succeeded");
    expect(manifest.outputs.dataset.pairs).toBeGreaterThan(0);
    // What the killed run journaled is reused by the new worker processes: their fingerprints are stable.
    expect(manifest.stages.responses!.cache!.hits).toBeGreaterThan(0);
    // A restarted worker's log keeps the killed attempt's lines; the killed attempt's events are kept.
    expect(readFileSync(join(runDir, "logs/a.log"), "utf8").match(/starting a/g)).toHaveLength(2);
    expect(existsSync(join(runDir, "events.attempt-1.jsonl"))).toBe(true);

    // The replay recomputes every stage in new processes (cache off) and compares every hash.
    const replay = await cli(["replay", join(runDir, "manifest.json"), "--store", store], { timeoutMs: 280_000 });
    expect(replay.exitCode, replay.stderr).toBe(0);
    const replayId = /^replay (crash-replay-\S+) matches crash: every hash equal$/m.exec(replay.stdout)?.[1];
    expect(replayId, replay.stdout).toBeDefined();
    const replayed = readJson<Manifest>(join(store, "runs", replayId!, "manifest.json"));
    expect(replayed.cache).toBe("off");
    expect(replayed.stages.images!.cache!.hits).toBe(0);
    expect(readFileSync(join(store, "runs", replayId!, "dataset/pairs.jsonl")).equals(readFileSync(join(runDir, "dataset/pairs.jsonl")))).toBe(true);
    expect(replayed.outputs.adapter_sha256).toBe(manifest.outputs.adapter_sha256);

    // No duplicate and no lost item: 8 images made and scored, 4 images x 2 responders answered,
    // 8 answers scored, one training; the same items as the uninterrupted replay.
    const items = journalItems(store, "crash");
    expect(items.filter((r) => r.n !== 1)).toEqual([]);
    const perOp = Object.fromEntries(["image.generate", "image.score", "response.generate", "response.score", "train"].map((op) => [op, items.filter((r) => r.op === op).length]));
    expect(perOp).toEqual({ "image.generate": 8, "image.score": 8, "response.generate": 8, "response.score": 8, train: 1 });
    expect(items.map((r) => `${r.op} ${r.item_id}`)).toEqual(journalItems(store, replayId!).map((r) => `${r.op} ${r.item_id}`));
  });
});
