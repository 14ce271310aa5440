// Maps a key path to its line in the YAML source, and an offset back to a key path.
import { isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node } from "yaml";

export type KeyPath = (string | number)[];

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** Line (1-based) of the deepest node on `path` that exists; a key's own line for map entries. */
export function lineOf(doc: Document, lines: LineCounter, path: readonly PropertyKey[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = rangeStart(node);
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else break;
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

/** The key path of the deepest map entry or list item whose source range holds `offset`. */
export function pathAt(doc: Document, offset: number): KeyPath {
  const path: KeyPath = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && within(p.key, p.value, offset));
      if (!pair || !isScalar(pair.key)) return path;
      path.push(String(pair.key.value));
      node = pair.value;
    } else if (isSeq(node)) {
      const idx = node.items.findIndex((it) => within(it, it, offset));
      if (idx < 0) return path;
      path.push(idx);
      node = node.items[idx];
    } else return path;
  }
}

/** The path and offset of the first map or list nested more than `max` levels deep, if any (iterative: no stack to overflow). */
export function deepestPath(doc: Document, max: number): { path: KeyPath; offset: number } | undefined {
  const todo: { node: unknown; path: KeyPath; depth: number }[] = [{ node: doc.contents, path: [], depth: 1 }];
  while (todo.length > 0) {
    const { node, path, depth } = todo.pop()!;
    if (!isMap(node) && !isSeq(node)) continue;
    if (depth > max) return { path, offset: rangeStart(node) ?? 0 };
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : "?";
        todo.push({ node: pair.key, path: [...path, key], depth: depth + 1 }, { node: pair.value, path: [...path, key], depth: depth + 1 });
      }
    } else node.items.forEach((item, i) => todo.push({ node: item, path: [...path, i], depth: depth + 1 }));
  }
  return undefined;
}

function rangeStart(node: unknown): number | undefined {
  return (node as Node | null)?.range?.[0];
}

function within(first: unknown, last: unknown, offset: number): boolean {
  const start = rangeStart(first);
  const end = (last as Node | null)?.range?.[2] ?? (first as Node | null)?.range?.[2];
  return start !== undefined && end !== undefined && offset >= start && offset <= end;
}
