// The prompts file: JSONL, one {id, category, t2i_prompt, instruction} a line.
// Strict UTF-8; its sha256 is taken over the bytes as read.
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { z } from "zod";
import { IntegrityError, type ConfigIssue } from "../errors.js";
import { lineBytes } from "../util/line-bytes.js";

/** Longest prompt id: it names files (images/<id>.png) and journal rows. */
export const MAX_PROMPT_ID = 128;
/** Longest prompt text (t2i_prompt, instruction), in UTF-8 bytes. */
export const MAX_PROMPT_BYTES = 64 * 1024;

// C0 controls but tab and newline, DEL, and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

const codePoint = (c: string) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;

/** A string field without control characters (tab and newline allowed). */
const plain = () =>
  z.string().superRefine((s, ctx) => {
    const m = CONTROL.exec(s);
    if (m) ctx.addIssue({ code: "custom", message: `control character ${codePoint(m[0])} at character ${m.index + 1}` });
  });

/** A prompt text: no control characters, not blank, at most MAX_PROMPT_BYTES. */
const text = () =>
  plain()
    .trim()
    .min(1)
    .superRefine((s, ctx) => {
      const bytes = Buffer.byteLength(s, "utf8");
      if (bytes > MAX_PROMPT_BYTES) ctx.addIssue({ code: "custom", message: `${bytes} bytes; at most ${MAX_PROMPT_BYTES} (64 KiB)` });
    });

export const PromptSchema = z.strictObject({
  id: z
    .string()
    .superRefine((s, ctx) => {
      if (s.length > MAX_PROMPT_ID) ctx.addIssue({ code: "custom", message: `${s.length} characters; at most ${MAX_PROMPT_ID}` });
    })
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "ids use letters, digits, '.', '_' and '-' (a letter or digit first)"),
  category: plain().min(1),
  t2i_prompt: text(),
  instruction: text(),
});
export type Prompt = z.infer<typeof PromptSchema>;

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

/** The prompts of a run, in file order: an array, or a PromptFile that parses each when asked. */
export interface PromptList extends Iterable<Prompt> {
  readonly length: number;
  at(index: number): Prompt | undefined;
}

/** FNV-1a over a byte range: tells a line read again from the one checked at load. */
function lineHash(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/**
 * The valid prompts of a prompts file, kept as each line's byte range and hash, not as
 * objects: a prompt is read from the file and parsed (through the schema, as at load) when
 * asked for, so a run of a million prompts holds a few bytes per prompt. A line that no
 * longer hashes as it did at load (the file was changed during the run) is refused.
 */
export class PromptFile implements PromptList {
  private last: { index: number; prompt: Prompt } | null = null;

  constructor(
    readonly path: string,
    /** start, end byte offsets of each prompt's line. */
    private readonly ranges: Float64Array,
    private readonly hashes: Uint32Array,
    readonly length = hashes.length,
  ) {}

  at(index: number): Prompt | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) return undefined;
    // A plan asks for each prompt once per candidate, one after another.
    if (this.last?.index === index) return this.last.prompt;
    const start = this.ranges[2 * index]!;
    const buf = Buffer.alloc(this.ranges[2 * index + 1]! - start);
    const fd = openSync(this.path, "r");
    try {
      readSync(fd, buf, 0, buf.length, start);
    } finally {
      closeSync(fd);
    }
    if (lineHash(buf, 0, buf.length) !== this.hashes[index]) throw new IntegrityError(`${this.path} changed since it was read (prompt ${index + 1}); start a new run with the file as it is now`);
    const prompt = PromptSchema.parse(JSON.parse(buf.toString("utf8")));
    this.last = { index, prompt };
    return prompt;
  }

  /** The first n prompts (a config's `limit`). */
  limit(n: number): PromptFile {
    return new PromptFile(this.path, this.ranges, this.hashes, Math.min(n, this.length));
  }

  *[Symbol.iterator](): Iterator<Prompt> {
    for (let i = 0; i < this.length; i++) yield this.at(i)!;
  }
}

/** Pure: parse JSONL text into prompts, or issues naming the file line. */
export function parsePrompts(text: string, keyPath: string, file: string): { prompts: Prompt[]; issues: ConfigIssue[] } {
  const prompts: Prompt[] = [];
  return { prompts, issues: parsePromptLines(text.split("\n"), keyPath, file, (p) => prompts.push(p)) };
}

/** Pure: prompts from JSONL lines, in one pass, each valid one handed to `keep` (while it is the current line). */
function parsePromptLines(lines: Iterable<string>, keyPath: string, file: string, keep: (p: Prompt) => void): ConfigIssue[] {
  let kept = 0;
  const issues: ConfigIssue[] = [];
  const seen = new Map<string, number>();
  let i = -1;
  let sawLine = false;
  for (const raw of lines) {
    i++;
    const line = raw.trim();
    if (!line) continue;
    // A file that is not JSON lines at all (YAML, a binary, the wrong path) is one problem, not one a line.
    if (!sawLine && !isJson(line)) return [{ path: keyPath, message: `${file}: not a JSON lines file: line ${i + 1} is not JSON` }];
    sawLine = true;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      issues.push({ path: keyPath, message: `${where}: not valid JSON` });
      continue;
    }
    const parsed = PromptSchema.safeParse(value);
    if (!parsed.success) {
      const first = parsed.error.issues[0]!;
      const field = first.path.length ? `${first.path.join(".")}: ` : "";
      issues.push({ path: keyPath, message: `${where}: ${field}${first.message.replace(/^Invalid input: /, "")}` });
      continue;
    }
    const dup = seen.get(parsed.data.id);
    if (dup !== undefined) {
      issues.push({ path: keyPath, message: `${where}: duplicate id ${parsed.data.id} (first on line ${dup})` });
      continue;
    }
    seen.set(parsed.data.id, i + 1);
    kept++;
    keep(parsed.data);
  }
  if (kept === 0 && issues.length === 0) issues.push({ path: keyPath, message: `${file}: has no prompts` });
  return issues;
}

/** Offset of the first byte of `bytes` that is not part of well-formed UTF-8, or -1. */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const cont = (i: number, lo = 0x80, hi = 0xbf) => i < bytes.length && bytes[i]! >= lo && bytes[i]! <= hi;
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    if (b < 0x80) i += 1;
    else if (b >= 0xc2 && b <= 0xdf && cont(i + 1)) i += 2;
    else if (b === 0xe0 && cont(i + 1, 0xa0) && cont(i + 2)) i += 3;
    else if (((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) && cont(i + 1) && cont(i + 2)) i += 3;
    else if (b === 0xed && cont(i + 1, 0x80, 0x9f) && cont(i + 2)) i += 3;
    else if (b === 0xf0 && cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3)) i += 4;
    else if (b >= 0xf1 && b <= 0xf3 && cont(i + 1) && cont(i + 2) && cont(i + 3)) i += 4;
    else if (b === 0xf4 && cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3)) i += 4;
    else return i;
  }
  return -1;
}

/** Pure: decode a prompts file's bytes as strict UTF-8, or the issue naming the first bad byte. */
export function decodePrompts(bytes: Uint8Array, keyPath: string, file: string): { text?: string; issue?: ConfigIssue } {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    const offset = Math.max(0, invalidUtf8Offset(bytes));
    // Not text at all (a binary, an image): say that, rather than where its first odd byte is.
    const lossy = new TextDecoder("utf-8").decode(bytes);
    const firstLine = lossy.split("\n").find((l) => l.trim() !== "");
    if (firstLine !== undefined && !isJson(firstLine.trim())) {
      const n = lossy.split("\n").findIndex((l) => l.trim() !== "") + 1;
      return { issue: { path: keyPath, message: `${file}: not a JSON lines file: line ${n} is not JSON` } };
    }
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    return { issue: { path: keyPath, message: `${file}:${line}: not valid UTF-8: byte 0x${bytes[offset]!.toString(16).padStart(2, "0")} at byte offset ${offset}` } };
  }
}

export function readPrompts(path: string, keyPath: string): { prompts: PromptFile; issues: ConfigIssue[]; sha256: string } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { prompts: NO_PROMPTS, sha256: "", issues: [{ path: keyPath, message: code === "ENOENT" ? `file not found: ${path}` : `cannot read ${path}: ${code}` }] };
  }
  // Hashed and checked as strict UTF-8 a chunk at a time as it is read (a million prompts'
  // file is never in memory whole); a bad file is read again whole, for its message.
  const hash = createHash("sha256");
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let badUtf8 = false;
  const check = (decode: () => void) => {
    try {
      decode();
    } catch {
      badUtf8 = true;
    }
  };
  const read = lineBytes(fd, (bytes) => {
    hash.update(bytes);
    check(() => utf8.decode(bytes, { stream: true }));
  });
  const ranges: number[] = [];
  const hashes: number[] = [];
  let line: { bytes: Buffer; start: number } = { bytes: Buffer.alloc(0), start: 0 };
  // The lines as text, until a chunk with a byte that is not UTF-8; `read` itself is not
  // closed when the parse stops early, so the rest of the file is still hashed and checked.
  function* lines(): Generator<string> {
    for (let r = read.next(); !r.done && !badUtf8; r = read.next()) {
      line = r.value;
      yield line.bytes.toString("utf8");
    }
  }
  let issues: ConfigIssue[];
  try {
    issues = parsePromptLines(lines(), keyPath, path, () => {
      ranges.push(line.start, line.start + line.bytes.length);
      hashes.push(lineHash(line.bytes, 0, line.bytes.length));
    });
    while (!badUtf8 && !read.next().done);
    // The end: a sequence left unfinished there is not UTF-8 either.
    check(() => utf8.decode());
  } finally {
    closeSync(fd);
  }
  if (badUtf8) {
    const bytes = readFileSync(path);
    return { prompts: NO_PROMPTS, issues: [decodePrompts(bytes, keyPath, path).issue!], sha256: createHash("sha256").update(bytes).digest("hex") };
  }
  return { prompts: new PromptFile(path, Float64Array.from(ranges), Uint32Array.from(hashes)), issues, sha256: hash.digest("hex") };
}

/** No prompts (a train-only experiment, or a file that could not be read). */
export const NO_PROMPTS = new PromptFile("", new Float64Array(0), new Uint32Array(0));
