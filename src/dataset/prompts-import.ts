// Pure: the authors' prompt files as the project's prompts (JSONL {id, category, t2i_prompt,
// instruction}, src/config/prompts.ts). The release has a text-to-image prompt file and an
// instruction file aligned line by line; each instruction starts with "<image> ". Ids (like
// `transport-919`) come from a third file aligned the same way, or from a leading column
// ("<id><TAB><text>") of the prompt or instruction file; without ids a prompt is named after its
// line (`line-12`) and its category is "uncategorized". A category is the id's prefix.
import { PromptSchema, type Prompt } from "../config/prompts.js";

/** The 15 categories of the PDS-DPO prompts. */
export const RELEASE_CATEGORIES = ["art", "industrial", "nature", "transport", "urban", "school", "holiday", "weather", "daily", "culinary", "home", "scifi", "animal", "plant", "fashion"] as const;

const ID_COLUMN = /^([A-Za-z0-9][A-Za-z0-9._-]*)\t(.*)$/;

/** A file's lines: "\r\n" as "\n", no line after the last newline. */
function linesOf(text: string): string[] {
  const lines = text.replace(/^\uFEFF/, "").replace(/\r\n/g, "\n").split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** Lines split into a leading id column and text, when every line has one. */
function idColumn(lines: string[]): { ids: string[]; texts: string[] } | undefined {
  if (lines.length === 0) return undefined;
  const m = lines.map((l) => ID_COLUMN.exec(l));
  if (m.some((x) => x === null)) return undefined;
  return { ids: m.map((x) => x![1]!), texts: m.map((x) => x![2]!) };
}

/** The category an id names: a release category it starts with, else the part before its last "-"/"_" number. */
export function categoryOf(id: string): string | undefined {
  const known = RELEASE_CATEGORIES.find((c) => id.startsWith(c) && /^[-_.]/.test(id.slice(c.length)));
  if (known) return known;
  const m = /^(.+?)[-_.]?\d+$/.exec(id);
  return m && /[A-Za-z]/.test(m[1]!) ? m[1]!.replace(/[-_.]+$/, "") : undefined;
}

export interface ImportResult {
  prompts: Prompt[];
  /** One line a problem: "line 4: instruction: ...". */
  issues: string[];
}

export function promptsFromReleaseFiles(t2iText: string, instructionText: string, idsText?: string): ImportResult {
  let t2i = linesOf(t2iText);
  let instructions = linesOf(instructionText);
  const idsFile = idsText === undefined ? undefined : linesOf(idsText).map((l) => l.trim());

  const t2iIds = idColumn(t2i);
  const instIds = idColumn(instructions);
  if (t2iIds) t2i = t2iIds.texts;
  if (instIds) instructions = instIds.texts;

  const counts = [`the text-to-image file has ${t2i.length}`, `the instruction file ${instructions.length}`, ...(idsFile ? [`the ids file ${idsFile.length}`] : [])];
  const n = t2i.length;
  if (instructions.length !== n || (idsFile && idsFile.length !== n)) {
    return { prompts: [], issues: [`the files are not aligned line by line: ${counts.join(", ")} lines`] };
  }
  if (n === 0) return { prompts: [], issues: ["no prompts: the files are empty"] };

  const issues: string[] = [];
  const sources = [idsFile && { name: "ids file", ids: idsFile }, t2iIds && { name: "text-to-image file's id column", ids: t2iIds.ids }, instIds && { name: "instruction file's id column", ids: instIds.ids }].filter(
    (s): s is { name: string; ids: string[] } => Boolean(s),
  );
  const prompts: Prompt[] = [];
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const where = `line ${i + 1}`;
    const named = sources.map((s) => ({ name: s.name, id: s.ids[i]! }));
    const disagree = named.find((s) => s.id !== named[0]!.id);
    if (disagree) {
      issues.push(`${where}: id: the ${named[0]!.name} says ${JSON.stringify(named[0]!.id)}, the ${disagree.name} ${JSON.stringify(disagree.id)}`);
      continue;
    }
    const id = named[0]?.id ?? `line-${i + 1}`;
    const category = named[0] ? categoryOf(id) : "uncategorized";
    if (category === undefined) {
      issues.push(`${where}: id ${JSON.stringify(id)}: no category prefix (like transport-919)`);
      continue;
    }
    const instruction = instructions[i]!.trim();
    const value = { id, category, t2i_prompt: t2i[i]!.trim(), instruction: instruction === "" || /^<image>/.test(instruction) ? instruction : `<image> ${instruction}` };
    const parsed = PromptSchema.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) issues.push(`${where}: ${issue.path.join(".") || "(prompt)"}: ${issue.message}`);
      continue;
    }
    const before = seen.get(id);
    if (before !== undefined) {
      issues.push(`${where}: id ${JSON.stringify(id)} repeats line ${before}`);
      continue;
    }
    seen.set(id, i + 1);
    prompts.push(parsed.data);
  }
  return { prompts, issues };
}

/** Prompts as the project's JSONL prompts file. */
export function promptsJsonl(prompts: readonly Prompt[]): string {
  return prompts.map((p) => `${JSON.stringify({ id: p.id, category: p.category, t2i_prompt: p.t2i_prompt, instruction: p.instruction })}\n`).join("");
}
