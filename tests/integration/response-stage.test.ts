// The response stage with failing responders, through the real CLI and workers.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, LOCAL_CPU, readJson, tempDir, writePrompts } from "../helpers.js";

function experiment(dir: string): string {
  // An instruction too long for the tiny responders' context: each responder fails that item.
  writePrompts(dir, 3, [JSON.stringify({ id: "daily-999", category: "daily", t2i_prompt: "a kitchen table", instruction: `<image> ${"describe every detail ".repeat(400)}` })]);
  const local = LOCAL_CPU;
  const path = join(dir, "experiment.yaml");
  writeFileSync(
    path,
    `name: responses-test
seed: 3
workers:
  sd: {kind: image-generator, model: {source: tiny, name: sd}, ${local}}
  pick: {kind: image-scorer, model: {source: tiny, name: clip-scorer}, ${local}}
  a: {kind: responder, model: {source: tiny, name: llava, seed: 1}, ${local}}
  b: {kind: responder, model: {source: tiny, name: llava, seed: 2}, ${local}}
  mute: {kind: responder, model: {source: tiny, name: llava-mute, seed: 3}, ${local}}
  rm: {kind: response-scorer, model: {source: tiny, name: reward}, ${local}}
  judge: {kind: response-scorer, model: {source: tiny, name: llava, seed: 1, type: vlm-judge}, ${local}}
stages:
  images: {prompts: prompts.jsonl, generator: sd, scorer: pick, guidance_scales: [5, 9], steps: 2, size: 64}
  responses:
    responders: [a, b, mute]
    decoding: {max_new_tokens: 16}
    scorer: [{worker: rm, weight: 1}, {worker: judge, weight: 0.5}]
    pairs: {drop_truncated: false}
`,
  );
  return path;
}

interface Manifest {
  stages: { responses: { counts: Record<string, number>; dropped_candidates: Record<string, number>; dropped_images: Record<string, number>; answers: { id: string; error?: string; words: number; scores: Record<string, number> }[] } };
}

describe("response stage", () => {
  it("an empty answer and a failing item are recorded with their reasons, never become pairs, and the run goes on", async () => {
    const dir = tempDir();
    const store = join(dir, "store");
    const r = await cli(["run", experiment(dir), "--store", store, "--run-id", "r1", "--until", "responses"]);
    expect(r.stderr).toContain("stage responses succeeded");
    expect(r.exitCode).toBe(0);
    const runDir = join(store, "runs", "r1");
    const m = readJson<Manifest>(join(runDir, "manifest.json")).stages.responses;
    expect(m.counts.candidates).toBe(4 * 3);
    // The long instruction failed on every responder; the mute responder answered "".
    const failed = m.answers.filter((a) => a.error);
    expect(failed.map((a) => a.id).sort()).toEqual(["daily-999.a.s0", "daily-999.b.s0", "daily-999.mute.s0"]);
    for (const a of failed) expect(a.error).toMatch(/^context_too_long: /);
    expect(m.dropped_candidates).toEqual({ failed: 3, empty: 3 });
    expect(m.dropped_images).toEqual({ too_few_candidates: 1 });
    // Both scorers scored every answer that had text.
    for (const a of m.answers.filter((x) => !x.error && x.words > 0)) expect(Object.keys(a.scores).sort()).toEqual(["judge", "rm"]);
    const pairs = readFileSync(join(runDir, "dataset/pairs.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; metadata: { chosen_id: string; rejected_id: string; candidates: { id: string; score: number; scores: Record<string, number> }[] } });
    expect(pairs.map((p) => p.id)).toEqual(["art-001", "art-002", "industrial-001"]);
    expect(pairs.length + 1).toBe(4);
    for (const p of pairs) {
      expect(p.metadata.chosen_id).not.toMatch(/mute/);
      expect(p.metadata.rejected_id).not.toMatch(/mute/);
      const c = p.metadata.candidates.find((x) => x.id === p.metadata.chosen_id)!;
      expect(c.score).toBeCloseTo(c.scores.rm! + 0.5 * c.scores.judge!, 10);
    }
  });
});
