// src/ has no import cycles (type-only imports count too): modules stay layered, and a
// stage or kind added later cannot quietly close a circle.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? sources(join(dir, d.name)) : d.name.endsWith(".ts") ? [join(dir, d.name)] : []));
}

/** Relative imports and re-exports of a module, as source paths; `declare module` augmentations are not imports. */
export function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  const code = text.replace(/declare module\s+"[^"]+"/g, "");
  for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/g)) out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, ".ts")));
  return out;
}

/** Every cycle's modules, by depth-first search over the import graph. */
export function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, "visiting");
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === "visiting") found.push(stack.slice(stack.indexOf(m)));
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, "done");
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  return found;
}

describe("import graph of src/", () => {
  it("finds a cycle where there is one", () => {
    const g = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]);
    expect(cycles(g)).toEqual([["a", "b", "c"]]);
    expect(cycles(new Map([["a", ["b"]], ["b", []]]))).toEqual([]);
    expect(importsOf("/x/a.ts", 'import type { T } from "./b.js";\nexport { U } from "../c.js";\ndeclare module "./d.js" {}')).toEqual(["/x/b.ts", "/c.ts"]);
  });

  it("has no cycles", () => {
    const files = sources(SRC);
    const graph = new Map(files.map((f) => [f, importsOf(f, readFileSync(f, "utf8"))]));
    expect(cycles(graph).map((c) => c.map((f) => relative(SRC, f)).join(" -> "))).toEqual([]);
  });
});
