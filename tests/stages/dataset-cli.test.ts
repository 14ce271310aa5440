// `dataset convert` and `prompts import` through the real CLI on a small handmade dataset:
// trl -> llama-factory -> ms-swift -> llava -> trl gives back the same pairs, each row's
// metadata carried through; a bad row or a
// missing image exits 2 naming it. No workers.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readPairs, writePairs, type PreferencePair } from "../../src/dataset/formats.js";
import { cli, readJson, tempDir } from "../helpers.js";
import { encodePng } from "../support/png.js";

const PAIRS: PreferencePair[] = [
  { id: "art-001", images: ["images/art-001.png"], question: "Describe the mood of this painting.", chosen: "Stormy and tense.", rejected: "A cat." },
  { id: "transport-919", images: ["images/transport-919.png"], question: "What does the sign say?", chosen: 'It says "STOP".', rejected: "I see no sign." },
];

const metadataOf = (p: PreferencePair) => ({ category: p.id.split("-")[0], margin: 1.5, candidates: [{ id: `${p.id}.a`, score: 0.25 }] });
/** The pairs as read back: each with its row's metadata, which every format carries. */
const WITH_METADATA = PAIRS.map((p) => ({ ...p, metadata: metadataOf(p) }));

/** A run-like directory: pairs.jsonl in the project's format (metadata and all) and its images. */
function handmade(): string {
  const dir = tempDir("pdsdpo-dataset-");
  mkdirSync(join(dir, "images"));
  for (const [i, p] of PAIRS.entries()) writeFileSync(join(dir, p.images[0]!), encodePng(2, 2, new Uint8Array(12).fill(40 * (i + 1))));
  const rows = PAIRS.map((p) => ({
    id: p.id,
    images: p.images,
    prompt: [{ role: "user", content: p.question }],
    chosen: [{ role: "assistant", content: p.chosen }],
    rejected: [{ role: "assistant", content: p.rejected }],
    metadata: metadataOf(p),
  }));
  writeFileSync(join(dir, "pairs.jsonl"), rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
  return dir;
}

describe("orchestrate dataset convert", { timeout: 30_000 }, () => {
  it("trl -> llama-factory -> ms-swift -> llava -> trl gives back the same pairs, and registers the llama-factory file", async () => {
    const dir = handmade();
    const steps: [string, string, string, string][] = [
      ["pairs.jsonl", "trl", "llama-factory", "lf.json"],
      ["lf.json", "llama-factory", "ms-swift", "swift.jsonl"],
      ["swift.jsonl", "ms-swift", "llava", "llava.json"],
      ["llava.json", "llava", "trl", "back.jsonl"],
    ];
    for (const [input, from, to, out] of steps) {
      const r = await cli(["dataset", "convert", join(dir, input), "--from", from, "--to", to, "--out", join(dir, out)]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain(`${join(dir, out)}: 2 pairs (${to}, from ${from}`);
      const read = readPairs(to as never, readFileSync(join(dir, out), "utf8"));
      expect(read.issues).toEqual([]);
      // The metadata (a run's scores, models and candidates) travels through every format.
      expect(read.pairs).toEqual(WITH_METADATA);
    }
    expect(readFileSync(join(dir, "back.jsonl"), "utf8")).toBe(writePairs("trl", WITH_METADATA));
    expect(readJson(join(dir, "dataset_info.json"))).toEqual({
      lf: { file_name: "lf.json", formatting: "sharegpt", ranking: true, columns: { messages: "conversations", chosen: "chosen", rejected: "rejected", images: "images" } },
    });
  });

  it("makes image paths relative to the output file; --images-from says where a run's dataset/ files find theirs", async () => {
    const run = handmade();
    mkdirSync(join(run, "dataset"));
    writeFileSync(join(run, "dataset/pairs.jsonl"), readFileSync(join(run, "pairs.jsonl")));
    const miss = await cli(["dataset", "convert", join(run, "dataset/pairs.jsonl"), "--from", "trl", "--to", "ms-swift", "--out", join(run, "out/swift.jsonl")]);
    expect(miss.exitCode).toBe(2);
    expect(miss.stderr).toContain("line 1: images[0]: images/art-001.png: no such file under");
    expect(miss.stderr).toContain(`every image is there under ${run}: pass --images-from ${run}`);
    expect(existsSync(join(run, "out/swift.jsonl"))).toBe(false);
    const ok = await cli(["dataset", "convert", join(run, "dataset/pairs.jsonl"), "--from", "trl", "--to", "ms-swift", "--out", join(run, "out/swift.jsonl"), "--images-from", run]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    const pairs = readPairs("ms-swift", readFileSync(join(run, "out/swift.jsonl"), "utf8")).pairs;
    expect(pairs.map((p) => p.images)).toEqual([["../images/art-001.png"], ["../images/transport-919.png"]]);
  });

  it("a bad input exits 2 naming each bad row, and writes nothing", async () => {
    const dir = handmade();
    const lines = readFileSync(join(dir, "pairs.jsonl"), "utf8").trim().split("\n");
    const second = JSON.parse(lines[1]!) as Record<string, unknown>;
    delete second.chosen;
    writeFileSync(join(dir, "bad.jsonl"), `${lines[0]}\n${JSON.stringify(second)}\n${JSON.stringify({ ...second, id: "x", chosen: "ok", images: ["images/none.png"] })}\n`);
    const r = await cli(["dataset", "convert", join(dir, "bad.jsonl"), "--from", "trl", "--to", "llava", "--out", join(dir, "out.json")]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`${join(dir, "bad.jsonl")}: line 2: chosen: missing`);
    expect(r.stderr).toContain("line 3: images[0]: images/none.png: no such file under");
    expect(existsSync(join(dir, "out.json"))).toBe(false);

    const usage = await cli(["dataset", "convert", join(dir, "pairs.jsonl"), "--from", "trl", "--to", "parquet", "--out", join(dir, "x")]);
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toContain("--to must be one of trl, llava, llama-factory, ms-swift, not 'parquet'");
  });

  it("more than 20 problems: the first 20 and a count", async () => {
    const dir = handmade();
    writeFileSync(join(dir, "many.jsonl"), Array.from({ length: 25 }, (_, i) => JSON.stringify({ id: `p${i}`, images: ["images/art-001.png"], prompt: "Q", chosen: "A" })).join("\n"));
    const r = await cli(["dataset", "convert", join(dir, "many.jsonl"), "--from", "trl", "--to", "trl", "--out", join(dir, "o.jsonl")]);
    expect(r.exitCode).toBe(2);
    const err = r.stderr.trim().split("\n");
    expect(err).toHaveLength(21);
    expect(err[0]).toContain("line 1: rejected: missing");
    expect(err[20]).toBe("... and 5 more problems");
  });
});

describe("orchestrate prompts import", { timeout: 30_000 }, () => {
  it("writes a prompts file the project reads; misaligned files exit 2", async () => {
    const dir = tempDir("pdsdpo-prompts-");
    writeFileSync(join(dir, "t2i.txt"), "A lighthouse in a storm\nA red bus on a wet street\n");
    writeFileSync(join(dir, "inst.txt"), "<image> Describe the mood.\n<image> What city could this be?\n");
    writeFileSync(join(dir, "ids.txt"), "art-1\ntransport-919\n");
    const r = await cli(["prompts", "import", "--t2i", join(dir, "t2i.txt"), "--instructions", join(dir, "inst.txt"), "--ids", join(dir, "ids.txt"), "--out", join(dir, "prompts.jsonl")]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("2 prompts in 2 categories");
    expect(readFileSync(join(dir, "prompts.jsonl"), "utf8")).toBe(
      '{"id":"art-1","category":"art","t2i_prompt":"A lighthouse in a storm","instruction":"<image> Describe the mood."}\n' +
        '{"id":"transport-919","category":"transport","t2i_prompt":"A red bus on a wet street","instruction":"<image> What city could this be?"}\n',
    );
    writeFileSync(join(dir, "ids.txt"), "art-1\n");
    const bad = await cli(["prompts", "import", "--t2i", join(dir, "t2i.txt"), "--instructions", join(dir, "inst.txt"), "--ids", join(dir, "ids.txt"), "--out", join(dir, "p2.jsonl")]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("the files are not aligned line by line: the text-to-image file has 2, the instruction file 2, the ids file 1 lines");
    expect(existsSync(join(dir, "p2.jsonl"))).toBe(false);
  });
});
