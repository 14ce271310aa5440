// Resume through the real orchestrator, with test workers: after the trainer died mid-training
// (finished stages kept, training continues from its newest checkpoint), and after the
// orchestrator itself was SIGKILLed at several points (the CLI as a child process, the test
// workers in this process): the final dataset equals an uninterrupted run's and the journal
// holds every item of the run exactly once. Plus what `resume` refuses.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, cli, journalItems, jsonLines, tempDir } from "../helpers.js";
import { modelSpecOf } from "../support/test-worker.js";
import { Fleet, ofType, readEvents, readManifest, resumeIn, runIn, STAGE, TestRuntime, workers, writeExperiment, type Event } from "../support/fleet.js";

describe("resume after the trainer died", { timeout: 30_000 }, () => {
  it("a trainer that dies mid-training and is restarted (max_restarts) continues from its newest checkpoint in the same run", async () => {
    const dir = tempDir("pdsdpo-resume-");
    const store = join(dir, "store");
    // Its first process dies after the 3rd step (checkpoints every step); the restarted one works.
    const defs = workers(["sd", "pick", "a", "b", "rm", "dpo"], { dpo: { max_restarts: 1, faultsFor: (_replica, start) => (start === 0 ? { dieAfter: () => 3 } : {}) } });
    const runtime = new TestRuntime(defs);
    const config = writeExperiment(dir, {
      workers: runtime.yaml(),
      prompts: 4,
      stages: [STAGE.images(), STAGE.responses(), STAGE.train({ checkpoint_every: 1, optim: "{lr: 0.001, max_steps: 6, batch_size: 1}" })].join("\n"),
    });
    const r = await runIn(config, store, { runId: "r1", runtime });
    expect(r.status, String(r.error)).toBe("succeeded");
    expect(runtime.started.filter((s) => s.name === "dpo")).toHaveLength(2);
    expect(ofType(r.events, "worker.requeued").map((e) => e.worker)).toEqual(["dpo"]);
    const steps = ofType(r.events, "train.step").map((e) => e.step as number);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
    expect((r.manifest.stages.train as unknown as { steps: number }).steps).toBe(6);
  });

  it("keeps the finished stages, starts only the trainer and continues from its newest checkpoint", async () => {
    const dir = tempDir("pdsdpo-resume-");
    const store = join(dir, "store");
    // The trainer dies after its 3rd step (checkpoints every step); its restart works.
    const defs = workers(["sd", "pick", "a", "b", "rm", "dpo"], { dpo: { faultsFor: () => ({ dieAfter: () => 3 }) } });
    const runtime = new TestRuntime(defs);
    const config = writeExperiment(dir, {
      workers: runtime.yaml(),
      prompts: 4,
      stages: [STAGE.images(), STAGE.responses(), STAGE.train({ checkpoint_every: 1, optim: "{lr: 0.001, max_steps: 6, batch_size: 1}" })].join("\n"),
    });
    const first = await runIn(config, store, { runId: "r1", runtime });
    expect(first.status).toBe("failed");
    const log = join(store, "runs", "r1", "logs", "dpo.log");
    expect((first.error as Error).message).toBe(`worker 'dpo' (dpo-trainer) died during Train (killed by SIGKILL); log: ${log}`);
    expect(first.manifest.error?.code).toBe("worker_crashed");
    const lastCheckpoint = Math.max(...ofType(first.events, "train.checkpoint").map((e) => e.step as number));
    expect(lastCheckpoint).toBe(3);

    defs.dpo!.faultsFor = undefined;
    const again = new TestRuntime(defs);
    const resumed = await resumeIn(store, "r1", { runtime: again });
    expect(resumed.status, String(resumed.error)).toBe("succeeded");
    // Only the trainer starts again; images and responses are not redone.
    expect(again.started.map((s) => s.name)).toEqual(["dpo"]);
    const fresh = resumed.events.slice(resumed.events.findIndex((e) => e.type === "run.started"));
    expect(ofType(fresh, "worker.ready").map((e) => e.worker)).toEqual(["dpo"]);
    expect(fresh.filter((e) => e.type === "image.generated" || e.type === "response.generated")).toEqual([]);
    expect(again.calls()).toBe(1);
    const steps = ofType(resumed.events, "train.step").map((e) => e.step as number);
    expect(steps[0]).toBe(lastCheckpoint + 1);
    expect(steps.at(-1)).toBe(6);
    const m = resumed.manifest;
    expect(m.status).toBe("succeeded");
    expect(m.stages.images!.status).toBe("succeeded");
    expect((m.stages.train as unknown as { steps: number }).steps).toBe(6);
    expect(m.outputs.dataset!.pairs).toBeGreaterThan(0);
    expect(m.outputs.adapter_sha256).toMatch(/^[0-9a-f]{64}$/);
    // A training resumed from a checkpoint is not journaled as a whole training.
    expect(m.stages.train!.cache).toMatchObject({ hits: 0, model_calls: 1 });
    expect(journalItems(store, "r1").filter((i) => i.op === "train")).toEqual([]);
    // The first attempt's events and manifest are kept, and so is the trainer's log.
    expect(existsSync(join(resumed.runDir, "events.attempt-1.jsonl"))).toBe(true);
    expect(existsSync(join(resumed.runDir, "manifest.attempt-1.json"))).toBe(true);
    expect(readFileSync(log, "utf8").match(/starting dpo/g)).toHaveLength(2);
  });
});

describe("orchestrate resume refuses", { timeout: 30_000 }, () => {
  it("a run that does not exist", async () => {
    const dir = tempDir();
    const r = await cli(["resume", "nope", "--store", dir]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe(`error: no run nope in ${dir} (no ${join(dir, "runs/nope/manifest.json")})`);
  });

  it("a run that already succeeded, and a run whose config file changed", async () => {
    const dir = tempDir("pdsdpo-resume-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick"]));
    try {
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 1, stages: STAGE.images() });
      // A worker that serves another model is refused: the run fails at once.
      fleet.worker("pick").spec = modelSpecOf({ source: "tiny", name: "another-scorer" });
      const failed = await runIn(config, store, { runId: "failed" });
      expect(failed.status).toBe("failed");
      expect((failed.error as Error).message).toMatch(/^worker 'pick' at 127\.0\.0\.1:\d+: serves a WORKER_KIND_IMAGE_SCORER with model 'another-scorer', but this worker is a WORKER_KIND_IMAGE_SCORER with model 'clip-scorer'; refusing it$/);
      fleet.setModel("pick", { source: "tiny", name: "clip-scorer" });
      expect((await runIn(config, store, { runId: "done" })).status).toBe("succeeded");
      const done = await cli(["resume", "done", "--store", store]);
      expect(done.exitCode).toBe(2);
      expect(done.stderr.trim()).toBe("error: run done already succeeded; nothing to resume");
      writeFileSync(config, readFileSync(config, "utf8").replace("steps: 2", "steps: 3"));
      const changed = await cli(["resume", "failed", "--store", store]);
      expect(changed.exitCode).toBe(2);
      expect(changed.stderr.trim()).toMatch(/^error: .*experiment\.yaml changed since run failed started \(sha256 [0-9a-f]{12}, now [0-9a-f]{12}\); start a new run instead$/);
    } finally {
      await fleet.stop();
    }
  });
});

/** Runs the CLI with --json and SIGKILLs it once `when` holds for the events it printed. */
async function attempt(args: string[], when: (events: Event[]) => boolean) {
  const proc = execa("node", [BIN, ...args, "--json"], { reject: false, timeout: 60_000, env: { HF_HUB_OFFLINE: "1" } });
  let buf = "";
  let killed = false;
  proc.stdout!.on("data", (chunk: Buffer) => {
    buf += chunk.toString();
    const complete = buf.slice(0, buf.lastIndexOf("\n") + 1);
    if (!killed && when(jsonLines(complete) as Event[])) {
      killed = true;
      proc.kill("SIGKILL");
    }
  });
  const r = await proc;
  return { killed, exitCode: r.exitCode, stderr: r.stderr };
}

const computed = (type: string, n: number) => (events: Event[]) => events.filter((e) => e.type === type && !e.cached).length >= n;


describe("the orchestrator killed (SIGKILL) at several points, `orchestrate resume` each time", { timeout: 90_000 }, () => {
  const dir = tempDir("pdsdpo-crash-");
  let fleet: Fleet;
  let config = "";

  beforeAll(async () => {
    // Slow enough that each kill lands mid-stage: 25 ms per result.
    const slow = { faults: { delayMs: 25 } };
    fleet = await Fleet.start(join(dir, "reference"), workers(["sd", "pick", "a", "b", "rm", "dpo"], { sd: { ...slow, batch_size: 2 }, pick: { ...slow, batch_size: 4 }, a: { ...slow, batch_size: 2 }, b: { ...slow, batch_size: 2 }, rm: { ...slow, batch_size: 2 }, dpo: slow }));
    config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 4, stages: [STAGE.images(), STAGE.responses(), STAGE.train({ checkpoint_every: 2, optim: "{lr: 0.001, max_steps: 8, batch_size: 1}" })].join("\n") });
  });
  afterAll(() => fleet.stop());

  it("finishes to the same dataset and adapter as an uninterrupted run, each item journaled once", async () => {
    const reference = join(dir, "reference");
    const whole = await runIn(config, reference, { runId: "whole" });
    expect(whole.status).toBe("succeeded");

    const store = join(dir, "store");
    fleet.store = store;
    // Mid-generation, mid-scoring, mid-answering, mid-answer-scoring, mid-training.
    const points = [computed("image.generated", 3), computed("image.scored", 1), computed("response.generated", 3), computed("response.scored", 1), computed("train.step", 3)];
    let kills = 0;
    let last = await attempt(["run", config, "--store", store, "--run-id", "crash"], points[0]!);
    for (let i = 1; i <= points.length && last.exitCode !== 0; i++) {
      expect(last.killed, last.stderr).toBe(true);
      kills++;
      last = await attempt(["resume", "crash", "--store", store], points[i] ?? (() => false));
    }
    expect(last.exitCode, last.stderr).toBe(0);
    // Each point is met while its stage still runs; on a busy machine the last kill may
    // land after the run ended.
    expect(kills).toBeGreaterThanOrEqual(points.length - 1);

    const manifest = readManifest(store, "crash");
    expect(manifest.status).toBe("succeeded");
    expect(manifest.outputs.dataset!.sha256).toBe(whole.manifest.outputs.dataset!.sha256);
    // Training went on from its newest checkpoint after the kill (a killed run's trainer saves
    // one when its call is cancelled): all 8 steps, the same adapter bytes.
    expect((manifest.stages.train as unknown as { steps: number }).steps).toBe(8);
    expect(manifest.outputs.adapter_sha256).toBe(whole.manifest.outputs.adapter_sha256);

    // No duplicate and no lost item: the same (op, item) set as the uninterrupted run, once each.
    const crashed = journalItems(store, "crash");
    expect(crashed.filter((r) => r.n !== 1)).toEqual([]);
    expect(crashed.map((r) => `${r.op} ${r.item_id}`)).toEqual(journalItems(reference, "whole").filter((r) => r.op !== "train").map((r) => `${r.op} ${r.item_id}`));
    expect(crashed.length).toBeGreaterThanOrEqual(8 + 8 + 8);
    // Every attempt's events were kept.
    for (let n = 1; n <= kills; n++) expect(existsSync(join(store, "runs", "crash", `events.attempt-${n}.jsonl`))).toBe(true);
  });
});
