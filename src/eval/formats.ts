// Pure: the benchmark file formats (configs/benchmarks/README.md), checked before any worker
// starts: each problem is one line naming the file, the line (JSON lines) or the index (JSON
// lists) and the field. The evaluator's readers check the same again; these make a bad file
// an exit 2 at `validate` and at run start. Each reader also lists the images its questions
// name, for the overlap check.
import type { BenchmarkType } from "../config/schema.js";

/** An image a benchmark's questions use: a path relative to its image root, or its bytes (base64 in the question file). */
export type BenchImage = { ref: string; path: string } | { ref: string; bytes: Buffer };

export interface FileData {
  /** As messages name it (the resolved path). */
  file: string;
  data: Buffer;
}

export interface Checked {
  issues: string[];
  images: BenchImage[];
}

/** Problems listed per file before the rest are counted. */
const MAX_ISSUES_PER_FILE = 20;

type Row = Record<string, unknown>;

class Issues {
  readonly list: string[] = [];
  private more = 0;
  add(message: string) {
    if (this.list.length < MAX_ISSUES_PER_FILE) this.list.push(message);
    else this.more++;
  }
  done(): string[] {
    return this.more ? [...this.list, `... and ${this.more} more problem${this.more === 1 ? "" : "s"}`] : this.list;
  }
}

function text(f: FileData, issues: Issues): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(f.data);
  } catch {
    issues.add(`${f.file}: not UTF-8 text`);
    return undefined;
  }
}

/** JSON lines: [where, row] per non-blank line ("<file> line N"). */
function jsonLines(f: FileData, issues: Issues): [string, Row][] {
  const t = text(f, issues);
  if (t === undefined) return [];
  const rows: [string, Row][] = [];
  t.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${f.file} line ${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      issues.add(`${where}: not JSON (${(e as Error).message})`);
      return;
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) issues.add(`${where}: not a JSON object`);
    else rows.push([where, v as Row]);
  });
  if (rows.length === 0 && issues.list.length === 0) issues.add(`${f.file}: no questions`);
  return rows;
}

function jsonDocument(f: FileData, issues: Issues): unknown {
  const t = text(f, issues);
  if (t === undefined) return undefined;
  try {
    return JSON.parse(t);
  } catch (e) {
    issues.add(`${f.file}: not JSON (${(e as Error).message})`);
    return undefined;
  }
}

/** A JSON list of objects: [where, row] per item ("<file>[i]", 0-based). */
function jsonList(f: FileData, issues: Issues, what = "a JSON list"): [string, Row][] {
  const doc = jsonDocument(f, issues);
  if (doc === undefined) return [];
  if (!Array.isArray(doc)) {
    issues.add(`${f.file}: not ${what}`);
    return [];
  }
  const rows: [string, Row][] = [];
  doc.forEach((v, i) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) issues.add(`${f.file}[${i}]: not a JSON object`);
    else rows.push([`${f.file}[${i}]`, v as Row]);
  });
  return rows;
}

type Kind = "string" | "nonempty" | "int" | "id" | "strings" | "yesno";
const WANT: Record<Kind, string> = { string: "a string", nonempty: "a non-empty string", int: "an integer", id: "an integer or a string", strings: "a list of strings", yesno: '"yes" or "no"' };
const OK: Record<Kind, (v: unknown) => boolean> = {
  string: (v) => typeof v === "string",
  nonempty: (v) => typeof v === "string" && v.trim() !== "",
  int: (v) => Number.isInteger(v),
  id: (v) => Number.isInteger(v) || (typeof v === "string" && v !== ""),
  strings: (v) => Array.isArray(v) && v.every((x) => typeof x === "string"),
  yesno: (v) => typeof v === "string" && ["yes", "no"].includes(v.trim().toLowerCase()),
};
const shown = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 60);

/** Whether row[key] is of `kind`; else one issue naming the field. */
function need(row: Row, key: string, kind: Kind, where: string, issues: Issues): boolean {
  if (!(key in row)) {
    issues.add(`${where}: missing field '${key}'`);
    return false;
  }
  if (!OK[kind](row[key])) {
    issues.add(`${where}: field '${key}' must be ${WANT[kind]}, not ${shown(row[key])}`);
    return false;
  }
  return true;
}

function repeated(ids: Map<string, string>, id: unknown, where: string, issues: Issues) {
  const key = String(id);
  const first = ids.get(key);
  if (first) issues.add(`${where}: question id ${shown(id)} repeats ${first}'s`);
  else ids.set(key, where);
}

/** POPE: JSON lines of {question_id, image, text, label: yes|no} (AoiDragon/POPE output/coco/coco_pope_*.json). */
export function checkPope(questions: FileData): Checked {
  const issues = new Issues();
  const images: BenchImage[] = [];
  const ids = new Map<string, string>();
  for (const [where, row] of jsonLines(questions, issues)) {
    if (need(row, "question_id", "id", where, issues)) repeated(ids, row.question_id, where, issues);
    if (need(row, "image", "nonempty", where, issues)) images.push({ ref: row.image as string, path: row.image as string });
    need(row, "text", "nonempty", where, issues);
    need(row, "label", "yesno", where, issues);
  }
  return { issues: issues.done(), images };
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Object-HalBench: RLHF-V's obj_halbench_300_with_image.jsonl, JSON lines of {image_id (a
 * COCO id), question, image (base64)} or image_path instead of image; the COCO instances and
 * captions files and CHAIR's synonyms list (a line per object: "name, synonym, ...").
 */
export function checkObjectHalbench(questions: FileData, refs: { instances: FileData; captions: FileData; synonyms: FileData }): Checked {
  const issues = new Issues();
  const images: BenchImage[] = [];
  const imageIds = new Map<number, string>();
  for (const [where, row] of jsonLines(questions, issues)) {
    if (need(row, "image_id", "id", where, issues)) {
      const id = Number(row.image_id);
      if (!Number.isInteger(id)) issues.add(`${where}: field 'image_id' must be a COCO image id (an integer), not ${shown(row.image_id)}`);
      else if (!imageIds.has(id)) imageIds.set(id, where);
    }
    need(row, "question", "nonempty", where, issues);
    if ("image" in row) {
      if (need(row, "image", "nonempty", where, issues)) {
        const b64 = (row.image as string).replace(/\s+/g, "");
        if (!BASE64.test(b64) || b64.length % 4 !== 0) issues.add(`${where}: field 'image' is not base64`);
        else images.push({ ref: `${where} image`, bytes: Buffer.from(b64, "base64") });
      }
    } else if ("image_path" in row) {
      if (need(row, "image_path", "nonempty", where, issues)) images.push({ ref: row.image_path as string, path: row.image_path as string });
    } else issues.add(`${where}: missing field 'image' (the image as base64) or 'image_path'`);
  }
  const synonyms = text(refs.synonyms, issues);
  const known = new Set<string>();
  if (synonyms !== undefined) {
    synonyms.split("\n").forEach((line) => {
      const words = line.split(",").map((w) => w.trim()).filter(Boolean);
      if (words.length) known.add(words[0]!);
    });
    if (known.size === 0) issues.add(`${refs.synonyms.file}: no words (one COCO object a line: 'name, synonym, ...')`);
  }
  const inst = jsonDocument(refs.instances, issues);
  if (inst !== undefined) {
    if (inst === null || typeof inst !== "object" || Array.isArray(inst)) issues.add(`${refs.instances.file}: not a JSON object (COCO instances_*.json)`);
    else {
      const o = inst as Row;
      const list = (key: string): unknown[] => {
        if (Array.isArray(o[key])) return o[key];
        issues.add(`${refs.instances.file}: ${key in o ? `field '${key}' must be a list` : `missing field '${key}'`}`);
        return [];
      };
      const categories = new Set<number>();
      list("categories").forEach((c, i) => {
        const where = `${refs.instances.file} categories[${i}]`;
        if (c === null || typeof c !== "object") return issues.add(`${where}: not a JSON object`);
        if (need(c as Row, "id", "int", where, issues)) categories.add((c as Row).id as number);
        if (need(c as Row, "name", "string", where, issues) && synonyms !== undefined && known.size && !known.has((c as Row).name as string)) {
          issues.add(`${where}: category '${(c as Row).name as string}' is on no line of ${refs.synonyms.file}`);
        }
      });
      const ids = new Set<number>();
      list("images").forEach((img, i) => {
        const where = `${refs.instances.file} images[${i}]`;
        if (img === null || typeof img !== "object") return issues.add(`${where}: not a JSON object`);
        if (need(img as Row, "id", "int", where, issues)) ids.add((img as Row).id as number);
      });
      list("annotations").forEach((a, i) => {
        const where = `${refs.instances.file} annotations[${i}]`;
        if (a === null || typeof a !== "object") return issues.add(`${where}: not a JSON object`);
        need(a as Row, "image_id", "int", where, issues);
        if (need(a as Row, "category_id", "int", where, issues) && !categories.has((a as Row).category_id as number)) issues.add(`${where}: field 'category_id' ${String((a as Row).category_id)} is no category of the file`);
      });
      for (const [id, where] of imageIds) if (!ids.has(id)) issues.add(`${where}: field 'image_id' ${id} is no image of ${refs.instances.file}`);
    }
  }
  const caps = jsonDocument(refs.captions, issues);
  if (caps !== undefined) {
    if (caps === null || typeof caps !== "object" || Array.isArray(caps)) issues.add(`${refs.captions.file}: not a JSON object (COCO captions_*.json)`);
    else if (!Array.isArray((caps as Row).annotations)) issues.add(`${refs.captions.file}: ${"annotations" in (caps as Row) ? "field 'annotations' must be a list" : "missing field 'annotations'"}`);
    else {
      ((caps as Row).annotations as unknown[]).forEach((a, i) => {
        const where = `${refs.captions.file} annotations[${i}]`;
        if (a === null || typeof a !== "object") return issues.add(`${where}: not a JSON object`);
        need(a as Row, "image_id", "int", where, issues);
        need(a as Row, "caption", "string", where, issues);
      });
    }
  }
  return { issues: issues.done(), images };
}

/** AMBER's annotation types (junyangwang0410/AMBER data/annotations.json). */
export const AMBER_TYPES = ["generative", "discriminative-hallucination", "discriminative-attribute-state", "discriminative-attribute-number", "discriminative-attribute-action", "discriminative-relation", "relation"];

/**
 * AMBER: a query file (a JSON list of {id, image, query}), annotations.json (a JSON list of
 * {id, type, truth, hallu}: generative entries list object words, the others "yes"/"no"),
 * relation.json (word -> associated words) and safe_words.txt, both needed by generative queries.
 */
export function checkAmber(questions: FileData, refs: { annotations: FileData; relation?: FileData; safe_words?: FileData }): Checked {
  const issues = new Issues();
  const images: BenchImage[] = [];
  const entries = new Map<number, Row>();
  for (const [where, row] of jsonList(refs.annotations, issues)) {
    if (!need(row, "id", "int", where, issues)) continue;
    if (need(row, "type", "string", where, issues) && !AMBER_TYPES.includes(row.type as string)) issues.add(`${where}: field 'type' must be one of ${AMBER_TYPES.join(", ")}, not ${shown(row.type)}`);
    if (row.type === "generative") {
      need(row, "truth", "strings", where, issues);
      need(row, "hallu", "strings", where, issues);
    } else need(row, "truth", "yesno", where, issues);
    if (entries.has(row.id as number)) issues.add(`${where}: id ${String(row.id)} repeats an earlier entry's`);
    entries.set(row.id as number, row);
  }
  let generative = false;
  const ids = new Map<string, string>();
  for (const [where, row] of jsonList(questions, issues)) {
    if (need(row, "id", "int", where, issues)) {
      repeated(ids, row.id, where, issues);
      const entry = entries.get(row.id as number);
      if (!entry && entries.size) issues.add(`${where}: field 'id' ${String(row.id)} has no entry in ${refs.annotations.file}`);
      if (entry?.type === "generative") generative = true;
    }
    if (need(row, "image", "nonempty", where, issues)) images.push({ ref: row.image as string, path: row.image as string });
    need(row, "query", "nonempty", where, issues);
  }
  if (generative) {
    if (!refs.relation) issues.add(`${questions.file}: generative queries need the relation file (references.relation)`);
    if (!refs.safe_words) issues.add(`${questions.file}: generative queries need the safe words file (references.safe_words)`);
  }
  if (refs.relation) {
    const rel = jsonDocument(refs.relation, issues);
    if (rel !== undefined) {
      if (rel === null || typeof rel !== "object" || Array.isArray(rel)) issues.add(`${refs.relation.file}: not a JSON object (object word -> associated words)`);
      else {
        for (const [word, v] of Object.entries(rel)) if (!OK.strings(v)) issues.add(`${refs.relation.file}: field '${word}' must be a list of strings, not ${shown(v)}`);
        for (const e of entries.values()) {
          if (e.type !== "generative") continue;
          for (const field of ["truth", "hallu"]) for (const w of (Array.isArray(e[field]) ? e[field] : []) as string[]) if (!(w in (rel as Row))) issues.add(`${refs.annotations.file} id ${String(e.id)}: field '${field}' word '${w}' is no key of ${refs.relation.file}`);
        }
      }
    }
  }
  if (refs.safe_words) text(refs.safe_words, issues);
  return { issues: issues.done(), images };
}

const MMHAL_FIELDS = ["question_type", "question_topic", "image_id", "image_src", "question", "gt_answer"];

/** The file name MMHal's images/ holds for an image_src (a URL's last path segment). */
export function mmhalImageName(src: string): string {
  let path = src;
  try {
    path = new URL(src).pathname;
  } catch {
    // not a URL: a path as it stands
  }
  return path.slice(path.lastIndexOf("/") + 1);
}

/** MMHal-Bench: response_template.json, a JSON list of {question_type, question_topic, image_id, image_src, image_content: [..], question, gt_answer, model_answer}. */
export function checkMmhal(questions: FileData): Checked {
  const issues = new Issues();
  const images: BenchImage[] = [];
  for (const [where, row] of jsonList(questions, issues, "a JSON list (MMHal-Bench's response_template.json)")) {
    for (const f of MMHAL_FIELDS) need(row, f, f === "question" ? "nonempty" : "string", where, issues);
    need(row, "image_content", "strings", where, issues);
    if ("model_answer" in row) need(row, "model_answer", "string", where, issues);
    if (typeof row.image_src === "string") {
      const name = mmhalImageName(row.image_src);
      if (!name) issues.add(`${where}: field 'image_src' names no file: ${shown(row.image_src)}`);
      else images.push({ ref: name, path: name });
    }
  }
  return { issues: issues.done(), images };
}

/** The reader of a benchmark type over its files; `refs` by role (the schema makes sure the required ones are there). */
export function checkBenchmark(type: BenchmarkType, questions: FileData, refs: Record<string, FileData>): Checked {
  switch (type) {
    case "pope":
    case "smoke-pope":
      return checkPope(questions);
    case "object-halbench":
      return checkObjectHalbench(questions, refs as { instances: FileData; captions: FileData; synonyms: FileData });
    case "amber":
      return checkAmber(questions, refs as { annotations: FileData });
    case "mmhal":
      return checkMmhal(questions);
  }
}
