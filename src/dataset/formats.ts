// Pure: preference datasets in the formats users' trainers read, to and from one neutral pair.
// Each reader validates row by row and names a bad row by its line (JSON lines) or its index
// (a JSON list, from 0); each writer turns pairs back into text. Image paths are kept as they
// are: the CLI resolves and checks them (src/cli/commands/dataset.ts).
//
//   trl            JSON lines {id, images, prompt, chosen, rejected}: TRL's conversational
//                  preference format as a run writes dataset/pairs.jsonl; prompt, chosen and
//                  rejected may also be plain strings (TRL's standard format).
//   llava          JSON list {id, image, conversations: [human, gpt], rejected_conversations:
//                  [human, gpt]}: the PDS-DPO release (as dataset/llava.json), LLaVA/POVID.
//   llama-factory  JSON list {conversations: [{from: human}], chosen: {from: gpt}, rejected:
//                  {from: gpt}, images}: LLaMA-Factory's sharegpt preference format
//                  (data/README.md), registered with llamaFactoryDatasetInfo.
//   ms-swift       JSON lines {messages: [user, assistant], rejected_response, images}:
//                  ms-swift's RLHF (DPO) standard format (docs Customization/Custom-dataset.md).
//
// LLaMA-Factory and ms-swift put an "<image>" token in the user turn for each image; the
// neutral question has none (as `questionOf` strips the release's placeholder). Both trainers
// drop columns they do not know, so an `id` column travels along, and so does `metadata` (a
// run's scores, models and candidates) in every format.

export interface PreferencePair {
  id: string;
  /** Image paths (or URLs) as the dataset names them. */
  images: string[];
  /** The question, without "<image>" placeholders. */
  question: string;
  chosen: string;
  rejected: string;
  /** A row's `metadata` object (a run's scores, models and candidates), carried through every format as an extra column. */
  metadata?: Record<string, unknown>;
}

export const DATASET_FORMATS = ["trl", "llava", "llama-factory", "ms-swift"] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export interface ReadResult {
  pairs: PreferencePair[];
  /** Where each pair came from ("line 3", "item 0"), parallel to pairs. */
  where: string[];
  /** One line a problem: "line 12: chosen: missing". */
  issues: string[];
  /** Images embedded in the file (a parquet file's Image feature), by the name the pairs give them ("embedded:<sha256>"). */
  embedded?: Map<string, Uint8Array>;
}

const LEADING_IMAGE_TOKENS = /^(\s*<image>)+\s*/;

/** The question without leading "<image>" tokens (one or more, with the whitespace around them). */
export function stripImageTokens(text: string): string {
  return text.replace(LEADING_IMAGE_TOKENS, "");
}

/** The user turn a trainer reads: one "<image>" token a image, then the question. */
function withImageTokens(question: string, images: number): string {
  return `${"<image>".repeat(images)}${question}`;
}

// ---- rows --------------------------------------------------------------------------------

interface Row {
  where: string;
  value: unknown;
}

/** A JSON list (items named "item N", from 0) or JSON lines (named "line N", from 1). */
function rowsOf(text: string): { rows: Row[]; issues: string[] } {
  const body = text.replace(/^\uFEFF/, "");
  if (body.trimStart().startsWith("[")) {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (e) {
      return { rows: [], issues: [`not valid JSON: ${(e as Error).message}`] };
    }
    return { rows: (value as unknown[]).map((v, i) => ({ where: `item ${i}`, value: v })), issues: [] };
  }
  const rows: Row[] = [];
  const issues: string[] = [];
  const lines = body.split("\n");
  const first = lines.findIndex((l) => l.trim() !== "");
  if (first < 0) return { rows, issues: ["empty: no pairs"] };
  if (!lines[first]!.trim().startsWith("{")) return { rows, issues: [`not JSON lines or a JSON list: line ${first + 1} is not a JSON object`] };
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    try {
      rows.push({ where: `line ${i + 1}`, value: JSON.parse(line) });
    } catch {
      issues.push(`line ${i + 1}: not valid JSON`);
    }
  });
  return { rows, issues };
}

/** Collects one row's problems as "<where>: <field>: <problem>". */
class RowCheck {
  readonly issues: string[] = [];
  constructor(readonly where: string) {}

  fail(path: string, message: string): undefined {
    this.issues.push(`${this.where}: ${path}: ${message}`);
    return undefined;
  }

  object(value: unknown, path: string): Record<string, unknown> | undefined {
    if (value === undefined) return this.fail(path, "missing");
    if (value === null || typeof value !== "object" || Array.isArray(value)) return this.fail(path, `expected an object, got ${kind(value)}`);
    return value as Record<string, unknown>;
  }

  array(value: unknown, path: string): unknown[] | undefined {
    if (value === undefined) return this.fail(path, "missing");
    if (!Array.isArray(value)) return this.fail(path, `expected a list, got ${kind(value)}`);
    return value;
  }

  string(value: unknown, path: string): string | undefined {
    if (value === undefined) return this.fail(path, "missing");
    if (typeof value !== "string") return this.fail(path, `expected a string, got ${kind(value)}`);
    return value;
  }

  /** A non-blank answer or question. */
  text(value: string | undefined, path: string): string | undefined {
    if (value === undefined) return undefined;
    if (value.trim() === "") return this.fail(path, "blank");
    return value;
  }

  /** `from`/`role` of a message is the expected one. */
  role(message: Record<string, unknown> | undefined, key: string, path: string, expected: string): boolean {
    if (!message) return false;
    const got = this.string(message[key], `${path}.${key}`);
    if (got === undefined) return false;
    if (got !== expected) {
      this.fail(`${path}.${key}`, `expected ${expected}, got ${JSON.stringify(got)}`);
      return false;
    }
    return true;
  }

  images(value: unknown, path: string): string[] | undefined {
    const list = this.array(value, path);
    if (!list) return undefined;
    if (list.length === 0) return this.fail(path, "empty: a pair needs an image");
    const out: string[] = [];
    list.forEach((v, i) => {
      const s = this.string(v, `${path}[${i}]`);
      if (s !== undefined && s.trim() === "") this.fail(`${path}[${i}]`, "blank");
      else if (s !== undefined) out.push(s);
    });
    return out.length === list.length ? out : undefined;
  }

  /** An optional id: a string or a number; the row's place when there is none. */
  id(value: unknown): string | undefined {
    if (value === undefined || value === null) return this.where.replace(" ", "-");
    if (typeof value === "number" && Number.isFinite(value)) return String(value);
    const s = this.string(value, "id");
    if (s !== undefined && s.trim() === "") return this.fail("id", "blank");
    return s;
  }
}

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

type RowReader = (row: RowCheck, value: Record<string, unknown>) => PreferencePair | undefined;

function readWith(text: string, readRow: RowReader): ReadResult {
  const { rows, issues } = rowsOf(text);
  return readRowsWith(rows, issues, readRow);
}

function readRowsWith(rows: Row[], issues: string[], readRow: RowReader): ReadResult {
  const out: ReadResult = { pairs: [], where: [], issues };
  const seen = new Map<string, string>();
  for (const { where, value } of rows) {
    const row = new RowCheck(where);
    const obj = value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    const read = obj ? readRow(row, obj) : row.fail("(row)", `expected an object, got ${kind(value)}`);
    const metadata = obj?.metadata === undefined ? undefined : row.object(obj.metadata, "metadata");
    const pair = read && metadata ? { ...read, metadata } : read;
    if (pair && row.issues.length === 0) {
      const before = seen.get(pair.id);
      if (before !== undefined) {
        row.fail("id", `${JSON.stringify(pair.id)} repeats ${before}`);
      } else {
        seen.set(pair.id, where);
        out.pairs.push(pair);
        out.where.push(where);
      }
    }
    out.issues.push(...row.issues);
  }
  if (rows.length === 0 && out.issues.length === 0) out.issues.push("empty: no pairs");
  return out;
}

/** A pair's metadata as the extra column every format carries (trainers drop columns they do not know). */
const metadataOf = (p: PreferencePair) => (p.metadata ? { metadata: p.metadata } : {});

// ---- trl ---------------------------------------------------------------------------------

/** A message's content: a string, or TRL's typed parts ({type: "text", text} and {type: "image"}). */
function contentText(row: RowCheck, content: unknown, path: string): string | undefined {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return content === undefined ? row.fail(path, "missing") : row.fail(path, `expected a string or a list of parts, got ${kind(content)}`);
  const texts: string[] = [];
  for (const [i, part] of content.entries()) {
    const p = row.object(part, `${path}[${i}]`);
    if (!p) return undefined;
    if (p.type === "text") {
      const t = row.string(p.text, `${path}[${i}].text`);
      if (t === undefined) return undefined;
      texts.push(t);
    } else if (p.type !== "image") {
      return row.fail(`${path}[${i}].type`, `expected text or image, got ${JSON.stringify(p.type)}`);
    }
  }
  return texts.join("");
}

/** TRL's prompt/chosen/rejected: a plain string, or a list of exactly one message of `role`. */
function trlTurn(row: RowCheck, value: unknown, path: string, role: "user" | "assistant"): string | undefined {
  if (typeof value === "string") return value;
  const list = row.array(value, path);
  if (!list) return undefined;
  if (list.length !== 1) return row.fail(path, `expected one ${role} message, got ${list.length} messages`);
  const m = row.object(list[0], `${path}[0]`);
  if (!row.role(m, "role", `${path}[0]`, role)) return undefined;
  return contentText(row, m!.content, `${path}[0].content`);
}

const readTrlRow: RowReader = (row, o) => {
  const id = row.id(o.id);
  const images = row.images(o.images, "images");
  const prompt = trlTurn(row, o.prompt, "prompt", "user");
  const question = row.text(prompt === undefined ? undefined : stripImageTokens(prompt), "prompt");
  const chosen = row.text(trlTurn(row, o.chosen, "chosen", "assistant"), "chosen");
  const rejected = row.text(trlTurn(row, o.rejected, "rejected", "assistant"), "rejected");
  if (id === undefined || !images || question === undefined || chosen === undefined || rejected === undefined) return undefined;
  return { id, images, question, chosen, rejected };
};

function writeTrl(pairs: readonly PreferencePair[]): string {
  return pairs
    .map((p) =>
      JSON.stringify({
        id: p.id,
        images: p.images,
        prompt: [{ role: "user", content: p.question }],
        chosen: [{ role: "assistant", content: p.chosen }],
        rejected: [{ role: "assistant", content: p.rejected }],
        ...metadataOf(p),
      }),
    )
    .map((l) => `${l}\n`)
    .join("");
}

// ---- llava (the PDS-DPO release, LLaVA/POVID) -------------------------------------------

/** A [human, gpt] conversation: its question turn's value and its answer. */
function llavaConversation(row: RowCheck, value: unknown, path: string): { human: string; answer: string } | undefined {
  const list = row.array(value, path);
  if (!list) return undefined;
  if (list.length !== 2) return row.fail(path, `expected 2 turns (human, gpt), got ${list.length}`);
  const h = row.object(list[0], `${path}[0]`);
  const g = row.object(list[1], `${path}[1]`);
  const okH = row.role(h, "from", `${path}[0]`, "human");
  const okG = row.role(g, "from", `${path}[1]`, "gpt");
  const human = h ? row.string(h.value, `${path}[0].value`) : undefined;
  const answer = g ? row.string(g.value, `${path}[1].value`) : undefined;
  if (!okH || !okG || human === undefined || answer === undefined) return undefined;
  return { human, answer };
}

const readLlavaRow: RowReader = (row, o) => {
  const id = row.id(o.id);
  const image = row.string(o.image, "image");
  if (image !== undefined && image.trim() === "") row.fail("image", "blank");
  const chosen = llavaConversation(row, o.conversations, "conversations");
  const rejected = llavaConversation(row, o.rejected_conversations, "rejected_conversations");
  if (chosen && rejected && chosen.human !== rejected.human) row.fail("rejected_conversations[0].value", "differs from conversations[0].value: both answer one question");
  const question = row.text(chosen ? stripImageTokens(chosen.human) : undefined, "conversations[0].value");
  const c = row.text(chosen?.answer, "conversations[1].value");
  const r = row.text(rejected?.answer, "rejected_conversations[1].value");
  if (id === undefined || image === undefined || question === undefined || c === undefined || r === undefined) return undefined;
  return { id, images: [image], question, chosen: c, rejected: r };
};

function writeLlava(pairs: readonly PreferencePair[]): string {
  const items = pairs.map((p) => {
    const human = { from: "human", value: `<image>\n${p.question}` };
    return {
      id: p.id,
      image: p.images[0],
      conversations: [human, { from: "gpt", value: p.chosen }],
      rejected_conversations: [human, { from: "gpt", value: p.rejected }],
      ...metadataOf(p),
    };
  });
  return `${JSON.stringify(items, null, 2)}\n`;
}

// ---- llama-factory (sharegpt, ranking) ---------------------------------------------------

function sharegptAnswer(row: RowCheck, value: unknown, path: string): string | undefined {
  const m = row.object(value, path);
  const ok = row.role(m, "from", path, "gpt");
  const text = m ? row.string(m.value, `${path}.value`) : undefined;
  return ok ? row.text(text, `${path}.value`) : undefined;
}

const readLlamaFactoryRow: RowReader = (row, o) => {
  const id = row.id(o.id);
  const images = row.images(o.images, "images");
  let question: string | undefined;
  const conv = row.array(o.conversations, "conversations");
  if (conv && conv.length !== 1) row.fail("conversations", `expected one human turn, got ${conv.length} turns`);
  else if (conv) {
    const h = row.object(conv[0], "conversations[0]");
    const ok = row.role(h, "from", "conversations[0]", "human");
    const value = h ? row.string(h.value, "conversations[0].value") : undefined;
    if (ok) question = row.text(value === undefined ? undefined : stripImageTokens(value), "conversations[0].value");
  }
  const chosen = sharegptAnswer(row, o.chosen, "chosen");
  const rejected = sharegptAnswer(row, o.rejected, "rejected");
  if (id === undefined || !images || question === undefined || chosen === undefined || rejected === undefined) return undefined;
  return { id, images, question, chosen, rejected };
};

function writeLlamaFactory(pairs: readonly PreferencePair[]): string {
  const items = pairs.map((p) => ({
    id: p.id,
    conversations: [{ from: "human", value: withImageTokens(p.question, p.images.length) }],
    chosen: { from: "gpt", value: p.chosen },
    rejected: { from: "gpt", value: p.rejected },
    images: p.images,
    ...metadataOf(p),
  }));
  return `${JSON.stringify(items, null, 2)}\n`;
}

/** The dataset_info.json entry that registers a llama-factory file (sharegpt, ranking, images). */
export function llamaFactoryDatasetInfo(name: string, file: string): Record<string, unknown> {
  return {
    [name]: {
      file_name: file,
      formatting: "sharegpt",
      ranking: true,
      columns: { messages: "conversations", chosen: "chosen", rejected: "rejected", images: "images" },
    },
  };
}

// ---- ms-swift (RLHF standard format) -----------------------------------------------------

const readMsSwiftRow: RowReader = (row, o) => {
  const id = row.id(o.id);
  const images = row.images(o.images, "images");
  let question: string | undefined;
  let chosen: string | undefined;
  const messages = row.array(o.messages, "messages");
  if (messages && messages.length !== 2) row.fail("messages", `expected 2 messages (user, assistant), got ${messages.length}`);
  else if (messages) {
    const u = row.object(messages[0], "messages[0]");
    const a = row.object(messages[1], "messages[1]");
    const okU = row.role(u, "role", "messages[0]", "user");
    const okA = row.role(a, "role", "messages[1]", "assistant");
    const q = u ? row.string(u.content, "messages[0].content") : undefined;
    const c = a ? row.string(a.content, "messages[1].content") : undefined;
    if (okU) question = row.text(q === undefined ? undefined : stripImageTokens(q), "messages[0].content");
    if (okA) chosen = row.text(c, "messages[1].content");
  }
  let rejected: string | undefined;
  if (o.rejected_response === undefined && o.rejected_messages !== undefined) {
    // ms-swift >= 3.8: the whole rejected conversation; its last turn is the rejected answer.
    const list = row.array(o.rejected_messages, "rejected_messages");
    if (list && list.length === 0) row.fail("rejected_messages", "empty");
    else if (list) {
      const path = `rejected_messages[${list.length - 1}]`;
      const last = row.object(list[list.length - 1], path);
      if (row.role(last, "role", path, "assistant")) rejected = row.text(row.string(last!.content, `${path}.content`), `${path}.content`);
    }
  } else {
    rejected = row.text(row.string(o.rejected_response, "rejected_response"), "rejected_response");
  }
  if (id === undefined || !images || question === undefined || chosen === undefined || rejected === undefined) return undefined;
  return { id, images, question, chosen, rejected };
};

function writeMsSwift(pairs: readonly PreferencePair[]): string {
  return pairs
    .map((p) =>
      JSON.stringify({
        id: p.id,
        messages: [
          { role: "user", content: withImageTokens(p.question, p.images.length) },
          { role: "assistant", content: p.chosen },
        ],
        rejected_response: p.rejected,
        images: p.images,
        ...metadataOf(p),
      }),
    )
    .map((l) => `${l}\n`)
    .join("");
}

// ---- dispatch ----------------------------------------------------------------------------

const READERS: Record<DatasetFormat, RowReader> = {
  trl: readTrlRow,
  llava: readLlavaRow,
  "llama-factory": readLlamaFactoryRow,
  "ms-swift": readMsSwiftRow,
};

const WRITERS: Record<DatasetFormat, (pairs: readonly PreferencePair[]) => string> = {
  trl: writeTrl,
  llava: writeLlava,
  "llama-factory": writeLlamaFactory,
  "ms-swift": writeMsSwift,
};

export function isDatasetFormat(s: string): s is DatasetFormat {
  return (DATASET_FORMATS as readonly string[]).includes(s);
}

/** Parse a dataset's text: the pairs of its good rows, and one issue a problem. */
export function readPairs(format: DatasetFormat, text: string): ReadResult {
  return readWith(text, READERS[format]);
}

/** Rows already parsed (a parquet file's, named "row N"): the pairs of the good ones, and one issue a problem. */
export function readPairRows(format: DatasetFormat, rows: { where: string; value: unknown }[]): ReadResult {
  return readRowsWith(rows, [], READERS[format]);
}

/** Why some pairs cannot be written in a format (the llava format holds one image a pair). */
export function unwritable(format: DatasetFormat, pairs: readonly PreferencePair[], where: readonly string[] = []): string[] {
  if (format !== "llava") return [];
  return pairs.flatMap((p, i) => (p.images.length === 1 ? [] : [`${where[i] ?? `pair ${JSON.stringify(p.id)}`}: images: ${p.images.length} images; the llava format holds one`]));
}

/** The dataset's text in a format. */
export function writePairs(format: DatasetFormat, pairs: readonly PreferencePair[]): string {
  const bad = unwritable(format, pairs);
  if (bad.length > 0) throw new Error(bad[0]);
  return WRITERS[format](pairs);
}
