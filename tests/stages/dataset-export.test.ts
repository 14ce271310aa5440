// `dataset export --format hf` through the real CLI (which runs the project's Python) on a
// handmade run directory: it writes dataset/hf/ and says so; an unknown run and a run whose
// dataset is bad (a missing image) exit 2 with one line naming it.
import { existsSync, mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, tempDir } from "../helpers.js";
import { encodePng } from "../support/png.js";

function run(): { store: string; dir: string } {
  const store = tempDir("pdsdpo-export-");
  const dir = join(store, "runs", "r1");
  mkdirSync(join(dir, "images"), { recursive: true });
  mkdirSync(join(dir, "dataset"));
  const rows = ["a-1", "b-2"].map((id, i) => {
    writeFileSync(join(dir, "images", `${id}.png`), encodePng(2, 2, new Uint8Array(12).fill(60 * (i + 1))));
    return { id, images: [`images/${id}.png`], prompt: [{ role: "user", content: "What is it?" }], chosen: [{ role: "assistant", content: "A square." }], rejected: [{ role: "assistant", content: "A dog." }] };
  });
  writeFileSync(join(dir, "dataset", "pairs.jsonl"), rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
  return { store, dir };
}

describe("orchestrate dataset export --format hf", { timeout: 60_000 }, () => {
  it("writes dataset/hf/ beside pairs.jsonl", async () => {
    const { store, dir } = run();
    const r = await cli(["dataset", "export", "--format", "hf", "r1", "--store", store]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe(`2 pairs → ${join(dir, "dataset", "hf")} (data/train-00000-of-00001.parquet, README.md)`);
    expect(existsSync(join(dir, "dataset", "hf", "data", "train-00000-of-00001.parquet"))).toBe(true);
  });

  it("an unknown run or a missing image is exit 2 with one line naming it (the Python side's other checks: test_hf_dataset.py)", async () => {
    const { store, dir } = run();
    const unknown = await cli(["dataset", "export", "--format", "hf", "nope", "--store", store]);
    expect([unknown.exitCode, unknown.stderr]).toEqual([2, `error: no run nope in ${store} (no ${join(store, "runs", "nope")})`]);
    unlinkSync(join(dir, "images", "b-2.png"));
    const missing = await cli(["dataset", "export", "--format", "hf", "r1", "--store", store]);
    expect([missing.exitCode, missing.stderr]).toEqual([2, `error: ${join(dir, "dataset", "pairs.jsonl")} pair 2 (b-2): image not found: ${join(dir, "images", "b-2.png")}`]);
    expect(existsSync(join(dir, "dataset", "hf"))).toBe(false);
  });
});
