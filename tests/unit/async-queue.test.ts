import { describe, expect, it } from "vitest";
import { ChunkGate, chunks } from "../../src/util/async-queue.js";

async function drain<T>(gate: ChunkGate<T>): Promise<T[][]> {
  const out: T[][] = [];
  const src = gate.source();
  for (let b = await src.next(); b !== null; b = await src.next()) out.push(b);
  return out;
}

describe("ChunkGate", () => {
  it("releases fixed chunks by id order whatever the arrival order, leaving out rejected items", async () => {
    const gate = new ChunkGate<string>(["a", "b", "c", "d", "e"], 2);
    for (const [id, v] of [["d", "D"], ["a", "A"], ["e", null], ["c", "C"], ["b", null], ["a", "again"]] as [string, string | null][]) gate.resolve(id, v);
    expect(await drain(gate)).toEqual([["C", "D"], ["A"]]);
  });

  it("closes at once with no ids, and skips a chunk with nothing accepted", async () => {
    expect(await drain(new ChunkGate<number>([], 4))).toEqual([]);
    const gate = new ChunkGate<number>(["x", "y", "z"], 2);
    gate.resolve("x", null);
    gate.resolve("y", null);
    gate.resolve("z", 3);
    expect(await drain(gate)).toEqual([[3]]);
  });

  it("serves several waiting consumers: each batch once, and every one of them ends at the close", async () => {
    const gate = new ChunkGate<number>(["a", "b", "c"], 1);
    const src = gate.source();
    const consumers = [0, 1, 2, 3].map(async () => {
      const got: number[][] = [];
      for (let b = await src.next(); b !== null; b = await src.next()) got.push(b);
      return got;
    });
    gate.resolve("b", 2);
    gate.resolve("a", 1);
    gate.finish();
    const all = (await Promise.all(consumers)).flat();
    expect(all.sort((x, y) => x[0]! - y[0]!)).toEqual([[1], [2]]);
  });

  it("chunks in order", () => {
    expect(chunks([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunks([], 3)).toEqual([]);
  });
});
