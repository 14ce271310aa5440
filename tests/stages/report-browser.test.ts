// The report of a whole run (images, responses, train, evaluate; test workers), opened in
// Debian's Chromium through playwright-core: no console errors, no request leaves the page,
// every chart has data points, the gallery's images load; a screenshot is kept with the test
// results.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { ROOT, tempDir } from "../helpers.js";
import { Fleet, runIn, STAGE, workers, writeExperiment } from "../support/fleet.js";

const CHROMIUM = process.env.PDS_DPO_CHROMIUM ?? "/usr/bin/chromium";

describe("run report in a browser", () => {
  it("has no console errors, data in every chart, and the stages of the run", { timeout: 60_000 }, async () => {
    expect(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: run scripts/setup.sh (it installs Debian's chromium)`).toBe(true);
    const dir = tempDir();
    const store = join(dir, "store");
    const fleet = await Fleet.start(store, workers(["sd", "pick", "a", "b", "rm", "dpo", "pope"]));
    let runDir: string;
    try {
      const config = writeExperiment(dir, {
        workers: fleet.yaml(),
        prompts: 12,
        stages: [STAGE.images({ guidance_scales: "[5, 7, 9, 11]", size: 64 }), STAGE.responses({ decoding: "{max_new_tokens: 32}" }), STAGE.train({ optim: "{lr: 0.001, max_steps: 4, batch_size: 2}" }), STAGE.evaluate()].join("\n"),
      });
      const r = await runIn(config, store, { runId: "rep" });
      expect(r.status, String(r.error)).toBe("succeeded");
      runDir = r.runDir;
    } finally {
      await fleet.stop();
    }
    const html = join(runDir, "report", "index.html");
    expect(readFileSync(html, "utf8")).not.toMatch(/<script|src="https?:|href="https?:/);
    const diagnostics = JSON.parse(readFileSync(join(runDir, "report", "diagnostics.json"), "utf8")) as Record<string, unknown>;
    expect(Object.keys(diagnostics)).toEqual(["schema", "run_id", "status", "stages", "workers", "images", "responses", "train", "evaluate", "sweep"]);

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      page.on("pageerror", (e) => errors.push(e.message));
      const requests: string[] = [];
      page.on("request", (req) => !req.url().startsWith("file:") && !req.url().startsWith("data:") && requests.push(req.url()));
      await page.goto(`file://${html}`);
      const charts = await page.$$eval("svg[data-chart]", (els) => els.map((e) => [e.getAttribute("data-chart"), Number(e.getAttribute("data-points"))] as [string, number]));
      expect(charts.map(([n]) => n)).toEqual(expect.arrayContaining(["image-score-by-guidance", "guidance-wins", "prompt-class-by-category", "length-words", "response-scores", "pair-margins", "responder-win-rates", "hard-negatives", "training-curves"]));
      for (const [name, points] of charts) expect(points, `chart ${name}`).toBeGreaterThan(0);
      expect(await page.$$eval(".sample img", (imgs) => imgs.filter((i) => (i as HTMLImageElement).naturalWidth > 0).length)).toBeGreaterThan(0);
      expect(await page.locator(".not-run").count()).toBe(0);
      // The evaluation in the paper's layout: a row per variant; the smoke-pope's detail labelled a smoke check; the overlap check's outcome.
      const paper = await page.$$eval("table.eval-paper tr", (trs) => trs.map((tr) => Array.from(tr.querySelectorAll("th,td")).map((c) => c.textContent ?? "")));
      expect(paper[0]).toEqual(["variant", "MMHal score", "MMHal hall.", "AMBER CHAIR", "AMBER Cover", "POPE acc", "POPE prec", "CHAIR_s", "CHAIR_i"]);
      expect(paper.slice(1).map((r) => r[0])).toEqual(["base", "trained"]);
      expect(await page.locator("table.eval-detail.smoke[data-benchmark=smoke-pope] td", { hasText: "accuracy" }).count()).toBe(1);
      expect(await page.locator("p.smoke").textContent()).toContain("Smoke check");
      expect(await page.locator("p.overlap").textContent()).toMatch(/^Overlap check: none of \d+ benchmark images matches any of \d+ training images/);
      // Each worker's lifetime: a row with its start, ready and stop times (seconds from the run's start).
      const rows = await page.$$eval("table.workers tr", (trs) => trs.slice(1).map((tr) => Array.from(tr.querySelectorAll("td")).map((td) => td.textContent ?? "")));
      expect(rows.map((r) => r[0])).toEqual(expect.arrayContaining(["sd", "pick", "a", "b", "rm", "dpo", "pope"]));
      for (const r of rows) for (const cell of r.slice(2)) expect(cell, r.join(" ")).toMatch(/^\d+\.\d$/);
      mkdirSync(join(ROOT, "test-results"), { recursive: true });
      await page.screenshot({ path: join(ROOT, "test-results", "report.png"), fullPage: true });
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
