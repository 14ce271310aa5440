import Database from "better-sqlite3";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { Journal, JOURNAL_FILE, type JournalEntry, type RunItem } from "../../src/store/journal.js";
import { tempDir } from "../helpers.js";

describe("Journal", () => {
  it("is a WAL SQLite file in the store that survives reopening", () => {
    const root = tempDir();
    const j = Journal.open(root);
    j.commit({ key: "k1", op: "image.generate", result: { id: "a", defects: [] }, artifacts: ["f".repeat(64)], runId: "r1" }, { stage: "images", op: "image.generate", itemId: "a", key: "k1", cached: false });
    j.close();
    const db = new Database(join(root, JOURNAL_FILE), { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.close();
    const again = Journal.open(root);
    expect(again.lookup("k1")).toEqual({ key: "k1", op: "image.generate", result: { id: "a", defects: [] }, artifacts: ["f".repeat(64)], runId: "r1" });
    expect(again.lookup("nope")).toBeUndefined();
    again.close();
  });

  it("records each run's items once; a reuse keeps the computing run's result", () => {
    const j = Journal.open(tempDir());
    const entry = { key: "k", op: "op", result: 1, artifacts: [], runId: "r1" };
    j.commit(entry, { stage: "images", op: "op", itemId: "a", key: "k", cached: false });
    // Redone after a crash: the same item again, still one row.
    j.commit(entry, { stage: "images", op: "op", itemId: "a", key: "k", cached: false });
    j.commit({ ...entry, result: null, runId: "r2" }, { stage: "images", op: "op", itemId: "a", key: "k", cached: true });
    expect(j.runItems("r1")).toEqual([{ stage: "images", op: "op", itemId: "a", key: "k", cached: false }]);
    expect(j.runItems("r2")).toEqual([{ stage: "images", op: "op", itemId: "a", key: "k", cached: true }]);
    expect(j.lookup("k")).toMatchObject({ result: 1, runId: "r1" });
    j.close();
  });

  it("commits a group of items in one transaction: all of them, or none when one fails", () => {
    const j = Journal.open(tempDir());
    const item = (id: string): [JournalEntry, RunItem] => [
      { key: `k-${id}`, op: "op", result: id, artifacts: [], runId: "r1" },
      { stage: "images", op: "op", itemId: id, key: `k-${id}`, cached: false },
    ];
    j.commitAll([item("a"), item("b")]);
    expect(j.runItems("r1").map((i) => i.itemId)).toEqual(["a", "b"]);
    // An item whose result cannot be stored (JSON of a BigInt throws) undoes its whole group.
    const [bad, badItem] = item("c");
    expect(() => j.commitAll([item("d"), [{ ...bad, result: 1n }, badItem]])).toThrow();
    expect(j.runItems("r1").map((i) => i.itemId)).toEqual(["a", "b"]);
    j.close();
  });

  it("remembers the last fingerprint of a worker configuration", () => {
    const j = Journal.open(tempDir());
    expect(j.knownWorker("spec")).toBeUndefined();
    j.rememberWorker("spec", { kind: "k" });
    expect(j.knownWorker("spec")).toEqual({ kind: "k" });
    j.close();
  });

  it("opens read-only only when the store has one, and names a file that is not a journal", () => {
    const root = tempDir();
    expect(Journal.openReadonly(root)).toBeNull();
    writeFileSync(join(root, JOURNAL_FILE), "not a database at all, just text that is long enough to look like a header");
    expect(() => Journal.open(root)).toThrow(IntegrityError);
    expect(() => Journal.open(root)).toThrow(/journal .*journal\.sqlite cannot be opened: file is not a database/);
  });
});
