// `orchestrate replay` through the real CLI, with test workers: a manifest replays to the same
// hashes (exit 0, cache off); a worker that now answers differently exits 3 naming the first
// stage and item and how it differs; a changed prompts file or a worker whose resolved
// revision cannot be met exits 2.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, tempDir } from "../helpers.js";
import { Fleet, readManifest, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";

describe("orchestrate replay", { timeout: 30_000 }, () => {
  const dir = tempDir("pdsdpo-replay-");
  const store = join(dir, "store");
  let fleet: Fleet;
  let manifestPath = "";

  beforeAll(async () => {
    fleet = await Fleet.start(store, workers(["sd", "pick", "a", "b", "rm", "dpo", "pope"]));
    const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 3, stages: [STAGE.images(), STAGE.responses(), STAGE.train(), STAGE.evaluate()].join("\n") });
    const r = await runIn(config, store, { runId: "orig" });
    expect(r.status).toBe("succeeded");
    manifestPath = join(r.runDir, "manifest.json");
  });
  afterAll(() => fleet.stop());

  it("matches its own run: every stage recomputed with the cache off, every hash equal", async () => {
    const callsBefore = fleet.calls();
    const same = await cli(["replay", manifestPath, "--store", store]);
    expect(same.exitCode, same.stderr).toBe(0);
    const line = /^replay (orig-replay-\S+) matches orig: every hash equal$/m.exec(same.stdout);
    expect(line).not.toBeNull();
    const replay = readManifest(store, line![1]!);
    expect(replay).toMatchObject({ cache: "off", replay_of: "orig", status: "succeeded" });
    for (const stage of ["images", "responses", "train"]) expect(replay.stages[stage]!.cache!.hits).toBe(0);
    expect(fleet.calls()).toBeGreaterThan(callsBefore);
  });

  it("a worker that answers differently: exit 3 naming the first stage, item and word", async () => {
    const changed = JSON.parse(readFileSync(manifestPath, "utf8")) as { config: { resolved: { workers: { b: { model: { seed: number } } } } } };
    changed.config.resolved.workers.b.model.seed = 9;
    const changedPath = join(dir, "changed-manifest.json");
    writeFileSync(changedPath, JSON.stringify(changed));
    // The endpoint now serves that other model.
    fleet.setModel("b", { source: "tiny", name: "llava", seed: 9 });
    try {
      const diff = await cli(["replay", changedPath, "--store", store]);
      expect(diff.exitCode).toBe(3);
      expect(diff.stderr.trim().split("\n").at(-1)).toMatch(/^error: replay orig-replay-\S+ differs from orig: first in stage responses, item art-001\.b\.s0: text differs at word \d+: /);
    } finally {
      fleet.setModel("b", { source: "tiny", name: "llava", seed: 2 });
    }
  });

  it("a worker whose resolved revision cannot be met exits 2", async () => {
    fleet.worker("rm").faults = { resolvedRevision: "tiny-v2" };
    try {
      const r = await cli(["replay", manifestPath, "--store", store]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr.trim().split("\n").at(-1)).toBe("error: replay cannot pin the original workers: worker 'rm': model revision tiny-v1 is pinned but tiny-v2 was loaded");
    } finally {
      fleet.heal();
    }
  });

  it("a changed prompts file exits 2 before anything runs", async () => {
    const prompts = join(dir, "prompts.jsonl");
    const original = readFileSync(prompts, "utf8");
    writeFileSync(prompts, original.replace("art-001", "art-101"));
    const callsBefore = fleet.calls();
    try {
      const r = await cli(["replay", manifestPath, "--store", store]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr.trim()).toMatch(/^error: the prompts file changed since run orig \(sha256 [0-9a-f]{12}, now [0-9a-f]{12}\); it cannot be replayed$/);
      expect(fleet.calls()).toBe(callsBefore);
    } finally {
      writeFileSync(prompts, original);
    }
  });
});
