// The overlap check reads every benchmark image before anything is evaluated: a corrupt one
// fails the run with one line naming it, before the evaluator is called.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers.js";
import { Fleet, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";

describe("overlap check: benchmark images", { timeout: 30_000 }, () => {
  it("a benchmark image that is no readable PNG or JPEG: the run fails naming it, the evaluator never called", async () => {
    const dir = tempDir("pdsdpo-overlap-");
    const store = join(dir, "store");
    mkdirSync(join(dir, "bench"));
    writeFileSync(join(dir, "bench/broken.jpg"), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3]));
    writeFileSync(join(dir, "bench/q.json"), `${JSON.stringify({ question_id: 1, image: "broken.jpg", text: "Is there a cat in the image?", label: "no" })}\n`);
    const fleet = await Fleet.start(store, workers(["sd", "pick", "pope"]));
    try {
      const config = writeExperiment(dir, { workers: fleet.yaml(), prompts: 1, stages: [STAGE.images(), STAGE.evaluate({ benchmarks: "[{type: pope, name: pope, path: bench/q.json}]" })].join("\n") });
      const r = await runIn(config, store, { runId: "o1" });
      expect(r.status).toBe("failed");
      expect(r.manifest.error).toMatchObject({ code: "integrity", message: expect.stringMatching(new RegExp(`^benchmark pope image ${join(dir, "bench/broken.jpg")}: not a readable JPEG`)) });
      expect(fleet.worker("pope").calls).toHaveLength(0);
    } finally {
      await fleet.stop();
    }
  });
});
