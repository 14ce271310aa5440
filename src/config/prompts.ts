// The prompts file: JSONL, one {id, category, t2i_prompt, instruction} a line.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { ConfigIssue } from "../errors.js";

export const PromptSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "ids use letters, digits, '.', '_' and '-'"),
  category: z.string().min(1),
  t2i_prompt: z.string().trim().min(1),
  instruction: z.string().trim().min(1),
});
export type Prompt = z.infer<typeof PromptSchema>;

/** Pure: parse JSONL text into prompts, or issues naming the file line. */
export function parsePrompts(text: string, keyPath: string, file: string): { prompts: Prompt[]; issues: ConfigIssue[] } {
  const prompts: Prompt[] = [];
  const issues: ConfigIssue[] = [];
  const seen = new Map<string, number>();
  text.split("\n").forEach((raw, i) => {
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
      issues.push({ path: keyPath, message: `${where}: ${field}${first.message}` });
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

export function readPrompts(path: string, keyPath: string): { prompts: Prompt[]; issues: ConfigIssue[]; sha256: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { prompts: [], sha256: "", issues: [{ path: keyPath, message: code === "ENOENT" ? `file not found: ${path}` : `cannot read ${path}: ${code}` }] };
  }
  return { ...parsePrompts(text, keyPath, path), sha256: createHash("sha256").update(text).digest("hex") };
}
