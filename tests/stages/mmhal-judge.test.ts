// MMHal-Bench through the evaluate stage (test workers): the evaluator answers the template,
// the judge responder gets one rubric prompt per answer with the question's image, each reply's
// rating is read as MMHal's script reads it, the metrics follow, and the responses file for
// MMHal's own GPT-4 script is written; a reply the judge cannot give is counted apart.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, tempDir } from "../helpers.js";
import { Fleet, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";

const MMHAL = join(ROOT, "configs/benchmarks/mmhal");

describe("MMHal-Bench judging", { timeout: 30_000 }, () => {
  it("rates every answer of base and trained with the rubric; score, hallucination rate, per type; the export", async () => {
    const dir = tempDir("pdsdpo-mmhal-");
    const store = join(dir, "store");
    const replies: Record<string, string> = { q0: "Accurate and detailed.\nRating: 5, very informative, no hallucination", q1: "It invents a second cat. rating: 2", q2: "No score given." };
    const fleet = await Fleet.start(
      store,
      workers(["sd", "pick", "a", "b", "rm", "dpo", "pope"], {
        judge: {
          kind: "responder",
          model: { source: "tiny", name: "llava", seed: 9 },
          faults: {
            answer: (id) => replies[id.slice(id.lastIndexOf(".") + 1)],
            itemError: (id) => (id === "mmhal.trained.q2" ? { code: "context_too_long", message: "prompt of 4853 tokens exceeds the model's context of 1024" } : undefined),
          },
        },
      }),
    );
    try {
      const config = writeExperiment(dir, {
        workers: fleet.yaml(),
        prompts: 2,
        stages: [STAGE.images(), STAGE.responses(), STAGE.train(), STAGE.evaluate({ benchmarks: `[{type: mmhal, name: mmhal, path: ${MMHAL}/response_template.json, image_root: ${MMHAL}/images, judge: judge}]` })].join("\n"),
      });
      const r = await runIn(config, store, { runId: "m1" });
      expect(r.status, String(r.error)).toBe("succeeded");
      const rows = JSON.parse(readFileSync(join(MMHAL, "response_template.json"), "utf8")) as { question_type: string; question: string; gt_answer: string; image_content: string[] }[];
      expect(rows).toHaveLength(3);

      // One judge prompt an answer: the rubric with the row's contents, question, standard answer and the model's answer, and the row's image.
      const items = fleet.worker("judge").calls.flatMap((c) => (c.request as { items: { id: string; instruction: string; image: unknown }[] }).items);
      expect(items.map((i) => i.id).sort()).toEqual(["mmhal.base.q0", "mmhal.base.q1", "mmhal.base.q2", "mmhal.trained.q0", "mmhal.trained.q1", "mmhal.trained.q2"]);
      const answers = readFileSync(join(r.runDir, "eval/mmhal-all-base.answers.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { question_id: string; answer: string });
      const q1 = items.find((i) => i.id === "mmhal.base.q1")!;
      expect(q1.instruction.startsWith("Please act as an impartial and objective judge")).toBe(true);
      expect(q1.instruction.endsWith(`### Image Contents\n${rows[1]!.image_content.join(", ")}\n\n### Question\n${rows[1]!.question}\n\n### Standard Human-Generated Answer\n${rows[1]!.gt_answer}\n\n### LMM Response to Evaluate\n${answers[1]!.answer}\n`)).toBe(true);
      expect(q1.image).toBeTruthy();

      // base: 5, 2 and no rating (0); trained: 5, 2 and a judge error (0, counted apart).
      const evals = JSON.parse(readFileSync(join(r.runDir, "eval/metrics.json"), "utf8")) as { model: string; metrics: Record<string, number> }[];
      const [base, trained] = evals;
      expect(evals.map((e) => e.model)).toEqual(["base", "trained"]);
      expect(base!.metrics).toMatchObject({ questions: 3, unparseable: 1, judge_errors: 0 });
      expect(base!.metrics.score).toBeCloseTo(7 / 3, 12);
      expect(base!.metrics.hallucination_rate).toBeCloseTo(2 / 3, 12);
      expect(base!.metrics[`score_${rows[0]!.question_type}`]).toBeCloseTo(5, 12);
      expect(trained!.metrics).toMatchObject({ unparseable: 1, judge_errors: 1 });
      expect(r.events.some((e) => e.type === "warning" && String(e.message).startsWith("judge judge failed on 1 of 3 mmhal answers of trained"))).toBe(true);
      const judged = readFileSync(join(r.runDir, "eval/mmhal-trained.judge.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(judged.map((j) => j.rating)).toEqual([5, 2, null]);
      expect(judged[2]!.error).toMatch(/^context_too_long: /);

      // The export: the template with each model_answer filled in.
      const exported = JSON.parse(readFileSync(join(r.runDir, "eval/mmhal-base.responses.json"), "utf8")) as { question: string; model_answer: string }[];
      expect(exported.map((e) => e.question)).toEqual(rows.map((x) => x.question));
      expect(exported.map((e) => e.model_answer)).toEqual(answers.map((a) => a.answer));
      expect(readFileSync(join(r.runDir, "eval/summary.md"), "utf8")).toMatch(/\| base \| 2\.3333 \| 0\.6667 \|/);
    } finally {
      await fleet.stop();
    }
  });
});
