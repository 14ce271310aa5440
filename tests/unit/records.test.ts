import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { sha256 } from "../../src/store/cas.js";
import { readLines, readRecords, RecordsWriter, SequencedWriter, zipRecords } from "../../src/store/records.js";
import { answerWindow } from "../../src/pipeline/stages/responses.js";
import { scoreOutcome } from "../../src/pipeline/item-cache.js";
import { ChunkGate } from "../../src/util/async-queue.js";
import { tempDir } from "../helpers.js";

describe("records files", () => {
  it("records put out of order are written in order; the ref has the count, bytes and sha256 of the file", () => {
    const dir = tempDir();
    const w = new RecordsWriter(dir, "records/x.jsonl");
    w.put(2, { i: 2 });
    w.put(0, { i: 0 });
    expect(w.written).toBe(1);
    expect(w.pending).toBe(1);
    // Until closed, the file is not there under its name: an existing records file is complete.
    expect(existsSync(join(dir, "records/x.jsonl"))).toBe(false);
    w.put(1, { i: 1 });
    expect(() => w.put(1, { i: 1 })).toThrow(/record 1 put twice/);
    const ref = w.close();
    const text = readFileSync(join(dir, "records/x.jsonl"), "utf8");
    expect(text).toBe('{"i":0}\n{"i":1}\n{"i":2}\n');
    expect(ref).toEqual({ path: "records/x.jsonl", count: 3, bytes: text.length, sha256: sha256(text) });
    expect([...readRecords<{ i: number }>(dir, ref)].map((r) => r.i)).toEqual([0, 1, 2]);
  });

  it("a failed stage's records: what waits behind a gap is still written, in order", () => {
    const dir = tempDir();
    const w = new RecordsWriter(dir, "records/y.jsonl");
    w.put(3, "c");
    w.put(0, "a");
    w.put(5, "d");
    expect(w.close().count).toBe(3);
    expect(readFileSync(join(dir, "records/y.jsonl"), "utf8")).toBe('"a"\n"c"\n"d"\n');
  });

  it("a JSON array written an element at a time, any number per sequence number, is JSON.stringify's pretty print byte for byte; a failed one is removed", () => {
    const dir = tempDir();
    const framing = { open: "[\n", separator: ",\n", close: "\n]\n", empty: "[]\n" };
    const unit = (x: unknown) => `  ${JSON.stringify(x, null, 2).replace(/\n/g, "\n  ")}`;
    const entries = [{ id: "a", c: [{ from: "human", value: "line\nbreak" }] }, { id: "b", c: [] }, { id: "c", n: 1 }];
    for (const [name, groups] of [["none", []], ["one", [[entries[0]]]], ["many", [[entries[1], entries[2]], [], [entries[0]]]]] as const) {
      const w = new SequencedWriter(dir, `${name}.json`, framing);
      // Sequence 1 first: it waits for 0.
      [...groups.entries()].reverse().forEach(([seq, g]) => w.putAll(seq, g.map(unit)));
      const ref = w.close();
      const text = readFileSync(join(dir, `${name}.json`), "utf8");
      expect(text).toBe(`${JSON.stringify(groups.flat(), null, 2)}\n`);
      expect(ref).toMatchObject({ count: groups.flat().length, bytes: Buffer.byteLength(text), sha256: sha256(text) });
    }
    const failed = new SequencedWriter(dir, "failed.json", framing);
    failed.putAll(0, [unit(entries[0])]);
    failed.abandon();
    expect(existsSync(join(dir, "failed.json"))).toBe(false);
    expect(existsSync(join(dir, "failed.json.partial"))).toBe(false);
  });

  it("the response stage's window: the floor, every responder's pipeline full, and a scoring slice's span of images", () => {
    expect(answerWindow(2, [16, 16], [32])).toBe(1024);
    // 4 x depth 2 x (64 x 4 replicas + 64) + 2 x ceil(4096 / 1) + 2
    expect(answerWindow(1, [256, 64], [4096])).toBe(4 * 2 * 320 + 2 * 4096 + 2);
  });

  it("lines are read a chunk at a time, a character cut by a chunk's end kept whole", () => {
    const dir = tempDir();
    const path = join(dir, "lines.jsonl");
    // Lines of multi-byte characters that straddle chunk boundaries (a chunk is 64 KiB; the
    // bytes after a chunk's last newline may end inside a character), and lines longer than a chunk.
    const lines = Array.from({ length: 3000 }, (_, i) => `${i}:${"é漢".repeat(100 + (i % 7))}`);
    lines.push("x".repeat((1 << 20) + 17), "é漢".repeat(40_000), "last without newline");
    writeFileSync(path, lines.join("\n"));
    expect([...readLines(path)]).toEqual(lines);
  });

  it("a missing or corrupt records file is an IntegrityError naming it", () => {
    const dir = tempDir();
    const ref = { path: "records/z.jsonl", count: 2, bytes: 0, sha256: "" };
    expect(() => [...readRecords(dir, ref)]).toThrow(IntegrityError);
    expect(() => [...readRecords(dir, ref)]).toThrow(/records\/z\.jsonl is missing \(the manifest names 2 records there\)/);
    mkdirSync(join(dir, "records"));
    writeFileSync(join(dir, ref.path), '{"ok":1}\n{not json\n');
    expect(() => [...readRecords(dir, ref)]).toThrow(/z\.jsonl:2: not a JSON record/);
  });

  it("a score's components are kept in key order, whatever order the worker's protobuf map had (records compare by bytes)", () => {
    const a = scoreOutcome({ id: "x", score: 1, components: { logit_scale: 14, cosine: 0.02 } });
    const b = scoreOutcome({ id: "x", score: 1, components: { cosine: 0.02, logit_scale: 14 } });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(Object.keys(a.components!)).toEqual(["cosine", "logit_scale"]);
  });

  it("zipRecords pairs by position and ends with the first stream", () => {
    expect([...zipRecords([1, 2, 3], ["a", "b"])]).toEqual([
      [1, "a"],
      [2, "b"],
      [3, undefined],
    ]);
  });
});

describe("ChunkGate by position", () => {
  it("releases each fixed slice once resolved, whatever the order, and keeps state only for open slices", async () => {
    const gate = new ChunkGate<number>(7, 3);
    const released: number[][] = [];
    const drain = (async () => {
      for (let b = await gate.source().next(); b !== null; b = await gate.source().next()) released.push(b);
    })();
    for (const i of [4, 3, 0, 1, 2, 6]) gate.resolveAt(i, i === 1 ? null : i * 10);
    // Slice 1 (3..5) waits for 5; slice 2 (6) is released alone.
    gate.resolveAt(5, 50);
    gate.resolveAt(5, 99); // resolved once: a repeat is ignored
    await drain;
    expect(released).toEqual([[0, 20], [60], [30, 40, 50]]);
  });

  it("finish releases what the producer never reported", async () => {
    const gate = new ChunkGate<string>(1_000_000, 4);
    gate.resolveAt(0, "a");
    gate.resolveAt(2, "c");
    gate.finish();
    expect(await gate.source().next()).toEqual(["a", "c"]);
    expect(await gate.source().next()).toBeNull();
  });
});
