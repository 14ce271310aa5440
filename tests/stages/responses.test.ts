// The response stage through the real orchestrator, with test workers: failed and empty
// answers, ties, truncated answers and near duplicates are recorded with their reasons and
// never become pairs; weighted scorers; several samples and pairs per image; the events, the
// manifest, the dataset files and the dataset card agree.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { journalItems, tempDir } from "../helpers.js";
import { responseRecords } from "../support/records.js";
import { Fleet, ofType, runIn, STAGE, workers, writeExperiment, type WorkerDefs } from "../support/fleet.js";

interface Answer {
  id: string;
  error?: string;
  words: number;
  finish_reason: string;
  scores: Record<string, number>;
}
interface ResponsesSection {
  counts: Record<string, number>;
  dropped_candidates: Record<string, number>;
  dropped_images: Record<string, number>;
  answers: Answer[];
  pairs: { prompt_id: string; pairs: { id: string; chosen: string; rejected: string }[]; dropped_pair?: string }[];
}
interface PairLine {
  id: string;
  images: string[];
  chosen: { role: string; content: unknown }[];
  rejected: { role: string; content: unknown }[];
  metadata: { chosen_id: string; rejected_id: string; margin: number; pair_policy: Record<string, unknown>; candidates: { id: string; text: string; score: number; scores: Record<string, number>; finish_reason?: string }[] };
}

async function responsesRun(defs: WorkerDefs, stages: string, o: { prompts?: number; extraPrompts?: string[] } = {}) {
  const dir = tempDir("pdsdpo-responses-");
  const store = join(dir, "store");
  const fleet = await Fleet.start(store, defs);
  try {
    const r = await runIn(writeExperiment(dir, { workers: fleet.yaml(), stages, prompts: o.prompts ?? 3, extraPrompts: o.extraPrompts }), store, { runId: "r1", until: "responses" });
    expect(r.status, String(r.error)).toBe("succeeded");
    // The manifest's counts and reasons, with the answers and pairs of the stage's records.
    const records = responseRecords(r.runDir, r.manifest);
    const section = { ...(r.manifest.stages.responses as unknown as ResponsesSection), answers: records.flatMap((x) => x.answers), pairs: records.map(({ answers: _, ...p }) => p) };
    const pairsPath = join(r.runDir, "dataset/pairs.jsonl");
    const text = readFileSync(pairsPath, "utf8").trim();
    const pairs = text ? text.split("\n").map((l) => JSON.parse(l) as PairLine) : [];
    return { r, section, pairs, fleet, store };
  } finally {
    await fleet.stop();
  }
}

describe("response stage", { timeout: 30_000 }, () => {
  it("an empty answer and a failing item are recorded with their reasons, never become pairs, and the run goes on; scorers are weighted", async () => {
    // An instruction too long for the responders' context: each responder fails that item. The
    // mute responder answers "" to everything.
    const long = JSON.stringify({ id: "daily-999", category: "daily", t2i_prompt: "a kitchen table", instruction: `<image> ${"describe every detail ".repeat(400)}` });
    const context = { contextChars: 2000 };
    const defs = workers(["sd", "pick", "a", "b", "rm"], {
      a: { faults: context },
      b: { faults: context },
      mute: { kind: "responder", model: { source: "tiny", name: "llava-mute", seed: 3 }, faults: { ...context, empty: () => true } },
      judge: { kind: "response-scorer", model: { source: "tiny", name: "llava", seed: 1, type: "vlm-judge" } },
    });
    const stages = [STAGE.images(), STAGE.responses({ responders: "[a, b, mute]", scorer: "[{worker: rm, weight: 1}, {worker: judge, weight: 0.5}]" })].join("\n");
    const { r, section: m, pairs } = await responsesRun(defs, stages, { extraPrompts: [long] });
    expect(m.counts.candidates).toBe(4 * 3);
    // The long instruction failed on every responder; the mute responder answered "".
    const failed = m.answers.filter((a) => a.error);
    expect(failed.map((a) => a.id).sort()).toEqual(["daily-999.a.s0", "daily-999.b.s0", "daily-999.mute.s0"]);
    for (const a of failed) expect(a.error).toMatch(/^context_too_long: /);
    expect(m.dropped_candidates).toEqual({ failed: 3, empty: 3 });
    expect(m.dropped_images).toEqual({ too_few_candidates: 1 });
    expect(m.counts).toMatchObject({ images: 4, answered: 12, failed: 3, pairs: 3, images_without_pair: 1 });
    // Both scorers scored every answer that had text, and nothing else.
    const withText = m.answers.filter((x) => !x.error && x.words > 0);
    expect(withText).toHaveLength(6);
    for (const a of withText) expect(Object.keys(a.scores).sort()).toEqual(["judge", "rm"]);
    for (const a of m.answers.filter((x) => x.error || x.words === 0)) expect(a.scores).toEqual({});
    expect(ofType(r.events, "response.scored")).toHaveLength(12);
    expect(pairs.map((p) => p.id)).toEqual(["art-001", "art-002", "industrial-001"]);
    for (const p of pairs) {
      expect(p.metadata.chosen_id).not.toMatch(/mute/);
      expect(p.metadata.rejected_id).not.toMatch(/mute/);
      const c = p.metadata.candidates.find((x) => x.id === p.metadata.chosen_id)!;
      expect(c.score).toBeCloseTo(c.scores.rm! + 0.5 * c.scores.judge!, 10);
      const rej = p.metadata.candidates.find((x) => x.id === p.metadata.rejected_id)!;
      expect(p.metadata.margin).toBeCloseTo(c.score - rej.score, 10);
      expect(c.score).toBeGreaterThan(rej.score);
    }
    // The dataset card counts the same drops.
    const card = readFileSync(join(r.runDir, "dataset/README.md"), "utf8");
    expect(card).toMatch(/failed \| 3/);
    expect(card).toMatch(/empty \| 3/);
    expect(card).toMatch(/too_few_candidates \| 1/);
  });

  it("keep_empty (the paper's scripts): empty answers are scored and can be rejected; failed ones still never are", async () => {
    const long = JSON.stringify({ id: "daily-999", category: "daily", t2i_prompt: "a kitchen table", instruction: `<image> ${"describe every detail ".repeat(400)}` });
    const context = { contextChars: 2000 };
    const defs = workers(["sd", "pick", "a", "rm"], {
      a: { faults: context },
      mute: { kind: "responder", model: { source: "tiny", name: "llava-mute", seed: 3 }, faults: { ...context, empty: () => true } },
      // The empty answer always scores lowest: the paper's known weakness, kept on purpose here.
      rm: { faults: { score: (id) => (id.includes(".mute.") ? -5 : 1) } },
    });
    const stages = [STAGE.images(), STAGE.responses({ responders: "[a, mute]", pairs: "{drop_truncated: false, keep_empty: true}" })].join("\n");
    const { r, section: m, pairs } = await responsesRun(defs, stages, { extraPrompts: [long] });
    // The failed answers (context_too_long) are dropped; the empty ones were scored.
    expect(m.dropped_candidates).toEqual({ failed: 2 });
    const empty = m.answers.filter((a) => !a.error && a.words === 0);
    expect(empty).toHaveLength(3);
    for (const a of empty) expect(a.scores).toEqual({ rm: -5 });
    expect(pairs.map((p) => p.id)).toEqual(["art-001", "art-002", "industrial-001"]);
    for (const p of pairs) {
      expect(p.metadata.rejected_id).toMatch(/\.mute\./);
      expect(p.metadata.pair_policy).toMatchObject({ keep_empty: true });
    }
    expect(ofType(r.events, "response.scored").filter((e) => e.error)).toEqual([]);
  });

  it("ties, truncated answers and near duplicates are dropped with their reasons; no pair is a warning", async () => {
    // Every answer scores the same: best-vs-worst is a tie on every image.
    const ties = await responsesRun(workers(["sd", "pick", "a", "b", "rm"], { rm: { faults: { score: () => 0.5 } } }), [STAGE.images(), STAGE.responses()].join("\n"));
    expect(ties.section.dropped_images).toEqual({ tie: 3 });
    expect(ties.section.counts.pairs).toBe(0);
    expect(ties.pairs).toEqual([]);
    expect(ties.r.warnings).toContain("no preference pair was made (see the manifest's dropped reasons)");
    expect(ties.section.pairs.map((p) => p.dropped_pair)).toEqual(["tie", "tie", "tie"]);

    // max_new_tokens 4: every answer (4 to 11 words) hits the limit and is cut; drop_truncated drops them.
    const cut = await responsesRun(workers(["sd", "pick", "a", "b", "rm"]), [STAGE.images(), STAGE.responses({ decoding: "{max_new_tokens: 4}", pairs: null })].join("\n"));
    expect(cut.section.answers.every((a) => a.finish_reason === "length")).toBe(true);
    expect(cut.section.dropped_candidates).toEqual({ truncated: 6 });
    expect(cut.section.dropped_images).toEqual({ too_few_candidates: 3 });

    // Both responders give the same words; scores differ by responder: near duplicates.
    const same = { answer: () => "A red cup stands on the wooden table near the window." };
    const dup = await responsesRun(
      workers(["sd", "pick", "a", "b", "rm"], { a: { faults: same }, b: { faults: same }, rm: { faults: { score: (id) => (id.includes(".a.") ? 1 : 0) } } }),
      [STAGE.images(), STAGE.responses()].join("\n"),
    );
    expect(dup.section.dropped_images).toEqual({ near_duplicate: 3 });
    expect(dup.pairs).toEqual([]);
  });

  it("sampled answers: several samples per responder with their own seeds, several pairs per image", async () => {
    const { r, section, pairs } = await responsesRun(
      workers(["sd", "pick", "a", "b", "rm"]),
      [STAGE.images(), STAGE.responses({ decoding: "{max_new_tokens: 64, do_sample: true, temperature: 0.7, num_samples: 3}", pairs: "{pairs_per_image: 2, max_similarity: 1}" })].join("\n"),
      { prompts: 2 },
    );
    expect(section.counts.candidates).toBe(2 * 2 * 3);
    expect(section.answers.map((a) => a.id).sort()).toEqual(["art-001", "art-002"].flatMap((p) => ["a", "b"].flatMap((w) => [0, 1, 2].map((k) => `${p}.${w}.s${k}`))).sort());
    // Each sample has its own seed: the texts of one item's samples differ.
    const texts = new Set(pairs.flatMap((p) => p.metadata.candidates.map((c) => c.text)));
    expect(texts.size).toBe(12);
    expect(pairs.map((p) => p.id)).toEqual(["art-001.p0", "art-001.p1", "art-002.p0", "art-002.p1"]);
    // The widest margin first, and the events said the same.
    for (const prompt of ["art-001", "art-002"]) {
      const [p0, p1] = pairs.filter((p) => p.id.startsWith(prompt));
      expect(p0!.metadata.margin).toBeGreaterThanOrEqual(p1!.metadata.margin);
    }
    const selected = ofType(r.events, "pairs.selected").flatMap((e) => (e.pairs as { id: string }[]).map((p) => p.id));
    expect(selected).toEqual(pairs.map((p) => p.id));
  });

  it("writes both dataset files and the card; every pair's image is in the run directory; counts add up", async () => {
    const { r, section, pairs } = await responsesRun(workers(["sd", "pick", "a", "b", "rm"]), [STAGE.images(), STAGE.responses()].join("\n"), { prompts: 4 });
    expect(pairs.length).toBeGreaterThan(0);
    for (const p of pairs) {
      expect(p.images).toEqual([`images/${p.id}.png`]);
      expect(readFileSync(join(r.runDir, p.images[0]!)).length).toBeGreaterThan(0);
      expect(p.chosen[0]!.role).toBe("assistant");
      expect(p.metadata.pair_policy).toMatchObject({ policy: "best-vs-worst", drop_truncated: false });
    }
    const llava = JSON.parse(readFileSync(join(r.runDir, "dataset/llava.json"), "utf8")) as unknown[];
    expect(llava).toHaveLength(pairs.length);
    expect(readFileSync(join(r.runDir, "dataset/README.md"), "utf8")).toContain("| pairs | ");
    const dropped = Object.values(section.dropped_images).reduce((x, y) => x + y, 0);
    expect(pairs.length + dropped).toBe(4);
    expect(section.counts).toMatchObject({ images: 4, candidates: 8, answered: 8, pairs: pairs.length });
    const written = ofType(r.events, "dataset.written")[0]!;
    expect((written.files as { path: string }[]).map((f) => f.path)).toEqual(["dataset/pairs.jsonl", "dataset/llava.json", "dataset/README.md"]);
    expect(r.manifest.outputs.dataset).toMatchObject({ pairs: pairs.length });
  });

  it("a responder or scorer that ends its call without an item's result: that answer fails (no_result, never journaled) and the stage goes on", async () => {
    const defs = workers(["sd", "pick", "a", "b", "rm"], {
      // Responder a returns nothing for art-002; the scorer nothing for b's answer to art-001.
      a: { faults: { omit: (id) => id === "art-002.a" } },
      rm: { faults: { omit: (id) => id === "art-001.b.s0" } },
    });
    const { r, section: m, store } = await responsesRun(defs, [STAGE.images(), STAGE.responses()].join("\n"));
    const failed = Object.fromEntries(m.answers.filter((a) => a.error).map((a) => [a.id, a.error]));
    expect(failed).toEqual({
      "art-002.a.s0": "no_result: a ended its call without a result for this item",
      "art-001.b.s0": "rm: no_result: rm ended its call without a result for this item",
    });
    expect(m.dropped_candidates).toEqual({ failed: 2 });
    expect(m.dropped_images).toMatchObject({ too_few_candidates: 2 });
    expect(m.counts).toMatchObject({ images: 3, answered: 6, failed: 2 });
    // Never journaled: a resumed or later run asks again. The items that came are.
    const journaled = journalItems(store, r.runId).map((x) => x.item_id);
    expect(journaled).toContain("art-001.a");
    expect(journaled).not.toContain("art-002.a");
    expect(journaled).toContain("art-001.a.s0@rm");
    expect(journaled).not.toContain("art-001.b.s0@rm");
  });
});
