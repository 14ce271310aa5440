// A train-only experiment: no images or responses stage; the train stage trains on a dataset
// of the user's own (here the dataset/llava.json, and then the pairs.jsonl, of an earlier
// run), and the evaluation runs on a benchmark file. The dataset becomes the run's own: its
// images in the store and the run directory, the manifest pinning the file and every image.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readRecords, type RecordsRef } from "../../src/store/records.js";
import { describe, expect, it } from "vitest";
import { sha256 } from "../../src/store/cas.js";
import { tempDir } from "../helpers.js";
import { Fleet, ofType, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";

interface TrainSection {
  dataset: { path: string; pairs: number; source: { path: string; sha256: string; format: string }; images: RecordsRef };
  steps: number;
}

describe("train-only experiments", { timeout: 30_000 }, () => {
  it("train on an earlier run's llava.json, then its pairs.jsonl: the same pairs, trained and evaluated", async () => {
    const dir = tempDir("pdsdpo-train-only-");
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick", "a", "b", "rm", "dpo", "pope"]));
    try {
      const first = await runIn(writeExperiment(dir, { workers: fleet.yaml(), prompts: 4, stages: [STAGE.images(), STAGE.responses()].join("\n") }), store, { runId: "made" });
      expect(first.status, String(first.error)).toBe("succeeded");
      const made = join(store, "runs", "made");
      const madePairs = readFileSync(join(made, "dataset/pairs.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; images: string[]; chosen: { content: string }[] });
      expect(madePairs.length).toBeGreaterThan(1);
      // A POPE file about the same images, for the evaluation.
      const pope = join(dir, "pope.jsonl");
      writeFileSync(pope, madePairs.map((p, i) => JSON.stringify({ question_id: `q${i}`, image: join(made, p.images[0]!), text: "Is there a cat in the image?", label: i % 2 ? "yes" : "no" })).join("\n") + "\n");

      const trainOnly = (file: string, runId: string) =>
        runIn(
          writeExperiment(dir, {
            file: `${runId}.yaml`,
            workers: fleet.yaml(),
            // The benchmark asks about the training images themselves: evaluated only because allowed, and flagged.
            stages: [STAGE.train({ dataset: file }), STAGE.evaluate({ benchmarks: `[{type: pope, name: pope, path: ${pope}}]`, allow_overlap: "true" })].join("\n"),
          }),
          store,
          { runId },
        );
      const viaLlava = await trainOnly(join(made, "dataset/llava.json"), "from-llava");
      expect(viaLlava.status, String(viaLlava.error)).toBe("succeeded");
      const viaTrl = await trainOnly(join(made, "dataset/pairs.jsonl"), "from-trl");
      expect(viaTrl.status, String(viaTrl.error)).toBe("succeeded");

      for (const [r, format] of [[viaLlava, "llava"], [viaTrl, "trl"]] as const) {
        expect(Object.keys(r.manifest.stages)).toEqual(["train", "evaluate"]);
        const t = r.manifest.stages.train as unknown as TrainSection;
        expect(t.dataset.source.format).toBe(format);
        expect(t.dataset.pairs).toBe(madePairs.length);
        // Every image pinned and placed in this run's directory, the same bytes as the earlier run's.
        const images = [...readRecords<{ path: string; sha256: string }>(r.runDir, t.dataset.images)];
        expect(t.dataset.images).toMatchObject({ path: "records/dataset-images.jsonl", count: images.length });
        for (const img of images) expect(sha256(readFileSync(join(r.runDir, img.path)))).toBe(img.sha256);
        expect(new Set(images.map((i) => i.sha256))).toEqual(new Set(madePairs.map((p) => sha256(readFileSync(join(made, p.images[0]!))))));
        expect(ofType(r.events, "train.step").length).toBeGreaterThan(0);
        expect((r.manifest.outputs.eval as { model: string }[] | undefined)?.map((e) => e.model)).toEqual(["base", "trained"]);
        // Every benchmark image is a training image: each overlap recorded (same bytes), flagged in the summary.
        const overlap = (r.manifest.stages.evaluate as unknown as { overlap: { allowed: boolean; overlaps: { benchmark: string; training_image: string; match: string }[] } }).overlap;
        expect(overlap.allowed).toBe(true);
        expect(overlap.overlaps).toHaveLength(madePairs.length);
        for (const o of overlap.overlaps) expect(o).toMatchObject({ benchmark: "pope", match: "sha256", training_image: expect.stringMatching(/^dataset\/images\//) });
        expect(readFileSync(join(r.runDir, "eval/summary.md"), "utf8")).toContain(`**Overlap: ${madePairs.length} benchmark images match training images; evaluated anyway (allow_overlap: true)`);
      }
      // Without allow_overlap the evaluation is refused, naming the benchmark, the image and the training image.
      const refused = await runIn(
        writeExperiment(dir, { file: "refused.yaml", workers: fleet.yaml(), stages: [STAGE.train({ dataset: join(made, "dataset/pairs.jsonl") }), STAGE.evaluate({ benchmarks: `[{type: pope, name: pope, path: ${pope}}]` })].join("\n") }),
        store,
        { runId: "refused" },
      );
      expect(refused.status).toBe("failed");
      expect(refused.manifest.error).toMatchObject({ code: "benchmark_overlap", message: expect.stringMatching(new RegExp(`^benchmark pope: image ${join(made, madePairs[0]!.images[0]!)} is training image dataset/images/[0-9a-f]{16}\\.png \\(same bytes\\) \\(and ${madePairs.length - 1} more overlaps, listed in eval/overlap\\.json\\); .*allow_overlap: true$`)) });
      // The two formats carry the same pairs: the same dataset for the trainer, so one training.
      const pairsOf = (r: typeof viaTrl) => readFileSync(join(r.runDir, "dataset/pairs.jsonl"), "utf8");
      expect(pairsOf(viaLlava)).toBe(pairsOf(viaTrl));
      expect(fleet.worker("dpo").calls).toHaveLength(1);
    } finally {
      await fleet.stop();
    }
  });

  it("validate names a dataset row that is broken and an image that is missing", async () => {
    const dir = tempDir("pdsdpo-train-only-");
    const fleet = await Fleet.start(join(dir, "store"), workers(["dpo"]));
    try {
      writeFileSync(join(dir, "mine.jsonl"), `${JSON.stringify({ id: "p0", images: ["nope.png"], prompt: "What is shown?", chosen: "a cat", rejected: "a dog" })}\n{"id": "p1", "images": []}\n`);
      const config = writeExperiment(dir, { workers: fleet.yaml(), stages: STAGE.train({ dataset: "mine.jsonl" }) });
      const err = await runIn(config, join(dir, "store"), { runId: "bad" }).catch((e: unknown) => e);
      expect(String(err)).toMatch(/stages\.train\.dataset: .*mine\.jsonl: line 2: .*(chosen|prompt)/);
      expect(String(err)).toMatch(/mine\.jsonl: line 1: image not found: .*nope\.png/);
    } finally {
      await fleet.stop();
    }
  });
});
