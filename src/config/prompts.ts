// The prompts file: JSONL, one {id, category, t2i_prompt, instruction} a line.
// Strict UTF-8; its sha256 is taken over the bytes as read.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { ConfigIssue } from "../errors.js";

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

/** Pure: parse JSONL text into prompts, or issues naming the file line. */
export function parsePrompts(text: string, keyPath: string, file: string): { prompts: Prompt[]; issues: ConfigIssue[] } {
  const prompts: Prompt[] = [];
  const issues: ConfigIssue[] = [];
  const seen = new Map<string, number>();
  const lines = text.split("\n");
  // A file that is not JSON lines at all (YAML, a binary, the wrong path) is one problem, not one a line.
  const first = lines.findIndex((l) => l.trim() !== "");
  if (first >= 0 && !isJson(lines[first]!.trim())) {
    return { prompts, issues: [{ path: keyPath, message: `${file}: not a JSON lines file: line ${first + 1} is not JSON` }] };
  }
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      issues.push({ path: keyPath, message: `${where}: not valid JSON` });
      return;
    }
    const parsed = PromptSchema.safeParse(value);
    if (!parsed.success) {
      const first = parsed.error.issues[0]!;
      const field = first.path.length ? `${first.path.join(".")}: ` : "";
      issues.push({ path: keyPath, message: `${where}: ${field}${first.message.replace(/^Invalid input: /, "")}` });
      return;
    }
    const dup = seen.get(parsed.data.id);
    if (dup !== undefined) {
      issues.push({ path: keyPath, message: `${where}: duplicate id ${parsed.data.id} (first on line ${dup})` });
      return;
    }
    seen.set(parsed.data.id, i + 1);
    prompts.push(parsed.data);
  });
  if (prompts.length === 0 && issues.length === 0) issues.push({ path: keyPath, message: `${file}: has no prompts` });
  return { prompts, issues };
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

export function readPrompts(path: string, keyPath: string): { prompts: Prompt[]; issues: ConfigIssue[]; sha256: string } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { prompts: [], sha256: "", issues: [{ path: keyPath, message: code === "ENOENT" ? `file not found: ${path}` : `cannot read ${path}: ${code}` }] };
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const { text, issue } = decodePrompts(bytes, keyPath, path);
  if (text === undefined) return { prompts: [], issues: [issue!], sha256 };
  return { ...parsePrompts(text, keyPath, path), sha256 };
}
