// A stage's per-item records in the run directory: records/<name>.jsonl, one JSON object a
// line in plan order. They are written as items finish, so the orchestrator's memory does not
// grow with the item count; the manifest keeps only their path, count and sha256, and every
// reader (report, replay, resume, show) reads them back a line at a time.
import { createHash, type Hash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { IntegrityError } from "../errors.js";
import { short, type CompareInputs, type Difference } from "../manifest/diff.js";
import { lineBytes } from "../util/line-bytes.js";

export const RECORDS_DIR = "records";

/** Where a stage's records are, as the manifest names them (path relative to the run directory). */
export interface RecordsRef {
  path: string;
  count: number;
  bytes: number;
  sha256: string;
}

export const recordsPath = (name: string) => `${RECORDS_DIR}/${name}.jsonl`;

/** Bytes buffered before a write: one syscall per ~64 KiB, not per line. */
const FLUSH_BYTES = 64 * 1024;

/** How a sequenced file frames its units: JSON lines (none), or a JSON array (llava.json). */
export interface Framing {
  /** Before the first unit. */
  open: string;
  /** Between two units. */
  separator: string;
  /** After the last unit. */
  close: string;
  /** The whole file when there is no unit. */
  empty: string;
}

const LINES: Framing = { open: "", separator: "", close: "", empty: "" };

/**
 * Appends units of text in sequence order: `putAll(seq, units)` may come in any order (items
 * finish out of order across replicas) with any number of units for a sequence number; they
 * are written once every earlier sequence number's have been, so the file's bytes never depend
 * on timing. Written to a temporary name and renamed by `close`: a file that exists is complete.
 */
export class SequencedWriter {
  private readonly fd: number;
  private readonly tmp: string;
  private readonly hash: Hash = createHash("sha256");
  private readonly waiting = new Map<number, string[]>();
  private next = 0;
  private count = 0;
  private bytes = 0;
  private buffer: string[] = [];
  private buffered = 0;
  private closed = false;

  constructor(
    private readonly runDir: string,
    readonly rel: string,
    private readonly framing: Framing = LINES,
  ) {
    const path = join(runDir, rel);
    mkdirSync(dirname(path), { recursive: true });
    this.tmp = `${path}.partial`;
    this.fd = openSync(this.tmp, "w");
  }

  /** The sequence numbers put but not yet written (waiting for an earlier one). */
  get pending(): number {
    return this.waiting.size;
  }

  /** The next sequence number the file waits for. */
  get written(): number {
    return this.next;
  }

  putAll(seq: number, units: string[]): void {
    if (this.closed) throw new Error(`${this.rel}: put after close`);
    if (seq < this.next || this.waiting.has(seq)) throw new Error(`${this.rel}: record ${seq} put twice`);
    this.waiting.set(seq, units);
    for (let next = this.waiting.get(this.next); next !== undefined; next = this.waiting.get(this.next)) {
      this.waiting.delete(this.next++);
      for (const unit of next) this.append(unit);
    }
  }

  private append(unit: string): void {
    this.write(this.count++ === 0 ? this.framing.open : this.framing.separator);
    this.write(unit);
  }

  private write(text: string): void {
    if (!text) return;
    this.hash.update(text);
    this.bytes += Buffer.byteLength(text);
    this.buffer.push(text);
    this.buffered += text.length;
    if (this.buffered >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    writeSync(this.fd, this.buffer.join(""));
    this.buffer = [];
    this.buffered = 0;
  }

  /**
   * Writes what is left and names the file. A stage that failed may leave gaps (items that
   * never finished): what waits behind one is written in order after it.
   */
  close(): RecordsRef {
    for (const seq of [...this.waiting.keys()].sort((a, b) => a - b)) for (const unit of this.waiting.get(seq)!) this.append(unit);
    this.waiting.clear();
    this.write(this.count === 0 ? this.framing.empty : this.framing.close);
    this.flush();
    closeSync(this.fd);
    this.closed = true;
    renameSync(this.tmp, join(this.runDir, this.rel));
    return { path: this.rel, count: this.count, bytes: this.bytes, sha256: this.hash.digest("hex") };
  }

  /** Closes and removes the unfinished file: what a failed stage leaves of a file that is only whole or absent. */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    rmSync(this.tmp, { force: true });
  }
}

/** A stage's records: one JSON object a line, in sequence order (`count`: the records). */
export class RecordsWriter extends SequencedWriter {
  put(seq: number, record: unknown): void {
    this.putAll(seq, [`${JSON.stringify(record)}\n`]);
  }
}

/** Every line of a file but empty ones, read a chunk at a time (never the whole file in memory). */
export function* readLines(path: string): Generator<string> {
  const fd = openSync(path, "r");
  try {
    for (const { bytes } of lineBytes(fd)) if (bytes.length) yield bytes.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/** A stage's records as the manifest names them, one parsed record at a time. */
export function* readRecords<T>(runDir: string, ref: RecordsRef): Generator<T> {
  const path = join(runDir, ref.path);
  if (!existsSync(path)) throw new IntegrityError(`${path} is missing (the manifest names ${ref.count} records there)`);
  let i = 0;
  for (const line of readLines(path)) {
    i++;
    try {
      yield JSON.parse(line) as T;
    } catch {
      throw new IntegrityError(`${path}:${i}: not a JSON record`);
    }
  }
}

/** Whether a records file is there to read (a manifest copied without its run directory has none). */
export const hasRecords = (runDir: string | null | undefined, ref: RecordsRef | undefined): runDir is string => !!runDir && !!ref && existsSync(join(runDir, ref.path));

/** Two record streams side by side, a record of `a` with the one at the same position of `b` (undefined once b ends). */
export function* zipRecords<A, B>(a: Iterable<A>, b: Iterable<B>): Generator<[A, B | undefined]> {
  const ib = b[Symbol.iterator]();
  try {
    for (const x of a) {
      const y = ib.next();
      yield [x, y.done ? undefined : y.value];
    }
  } finally {
    ib.return?.();
  }
}

/**
 * Two runs' records of a stage, to compare item by item: `same` when neither has any or they
 * are byte-equal (equal records hold equal items, so they are not read), a difference when
 * one run has none or the original's are not beside its manifest, else the records of both,
 * read again a line at a time on each call, side by side.
 */
export function recordsToCompare<T>(
  stage: string,
  what: string,
  before: RecordsRef | undefined,
  after: RecordsRef | undefined,
  dirs: CompareInputs["runDirs"],
): { difference: Difference } | { same: true } | { pairs: () => Generator<[T, T | undefined]> } {
  if (!before || !after) return before === after ? { same: true } : { difference: { stage, item: "records", what: `the ${what} records are missing from the ${before ? "replay" : "original run"}` } };
  if (before.sha256 === after.sha256) return { same: true };
  if (!hasRecords(dirs?.before, before) || !hasRecords(dirs?.after, after)) {
    return { difference: { stage, item: before.path, what: `sha256 ${short(before.sha256)} vs ${short(after.sha256)} (the original run's records are not beside its manifest to say which item)` } };
  }
  return { pairs: () => zipRecords(readRecords<T>(dirs!.before!, before), readRecords<T>(dirs!.after!, after)) };
}
