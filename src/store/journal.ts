// The run journal: <store>/journal.sqlite (WAL). `items` maps a cache key to the item's
// result and its artifacts' hashes; `run_items` records which items each run finished. An
// item is committed in one transaction after its artifacts are in the store, so a crash
// at any point loses at most the items in flight.
import Database from "better-sqlite3";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { IntegrityError } from "../errors.js";

export const JOURNAL_FILE = "journal.sqlite";

export interface JournalEntry {
  key: string;
  op: string;
  result: unknown;
  /** sha256 of each artifact the result names; all must still be in the store to reuse it. */
  artifacts: string[];
  runId: string;
}

export interface RunItem {
  stage: string;
  op: string;
  itemId: string;
  key: string;
  cached: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS items (
  key TEXT PRIMARY KEY,
  op TEXT NOT NULL,
  result TEXT NOT NULL,
  artifacts TEXT NOT NULL,
  run_id TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_items (
  run_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  op TEXT NOT NULL,
  item_id TEXT NOT NULL,
  key TEXT NOT NULL,
  cached INTEGER NOT NULL,
  PRIMARY KEY (run_id, op, item_id)
);
CREATE TABLE IF NOT EXISTS worker_fingerprints (
  spec_digest TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  seen_at TEXT NOT NULL
);
`;

export class Journal {
  private readonly db: Database.Database;
  private readonly getItem: Database.Statement<[string], { key: string; op: string; result: string; artifacts: string; run_id: string }>;
  private readonly putItem: Database.Statement<[string, string, string, string, string, string]>;
  private readonly putRunItem: Database.Statement<[string, string, string, string, string, number]>;
  private readonly commitTx: (items: [JournalEntry, RunItem][]) => void;

  constructor(readonly path: string, opts: { readonly?: boolean } = {}) {
    try {
      if (opts.readonly) {
        this.db = new Database(path, { readonly: true, fileMustExist: true, timeout: 10_000 });
      } else {
        this.db = new Database(path, { timeout: 10_000 });
        this.db.pragma("journal_mode = WAL");
        // WAL + NORMAL: a committed transaction survives the process being killed.
        this.db.pragma("synchronous = NORMAL");
        this.db.exec(SCHEMA);
      }
    } catch (e) {
      throw new IntegrityError(`the journal ${path} cannot be opened: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.getItem = this.db.prepare("SELECT key, op, result, artifacts, run_id FROM items WHERE key = ?");
    this.putItem = this.db.prepare("INSERT OR REPLACE INTO items (key, op, result, artifacts, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?)");
    this.putRunItem = this.db.prepare("INSERT OR REPLACE INTO run_items (run_id, stage, op, item_id, key, cached) VALUES (?, ?, ?, ?, ?, ?)");
    this.commitTx = this.db.transaction((items: [JournalEntry, RunItem][]) => {
      const now = new Date().toISOString();
      for (const [e, item] of items) {
        if (!item.cached) this.putItem.run(e.key, e.op, JSON.stringify(e.result), JSON.stringify(e.artifacts), e.runId, now);
        this.putRunItem.run(e.runId, item.stage, item.op, item.itemId, item.key, item.cached ? 1 : 0);
      }
    });
  }

  static open(storeRoot: string): Journal {
    mkdirSync(storeRoot, { recursive: true });
    return new Journal(join(storeRoot, JOURNAL_FILE));
  }

  /** The store's journal for reading (plan), or null when the store has none yet. */
  static openReadonly(storeRoot: string): Journal | null {
    const path = join(storeRoot, JOURNAL_FILE);
    return existsSync(path) ? new Journal(path, { readonly: true }) : null;
  }

  lookup(key: string): JournalEntry | undefined {
    const row = this.getItem.get(key);
    if (!row) return undefined;
    return { key: row.key, op: row.op, result: JSON.parse(row.result) as unknown, artifacts: JSON.parse(row.artifacts) as string[], runId: row.run_id };
  }

  /** Records a finished item of a run: a computed one with its result, a reused one by its key only. */
  commit(entry: JournalEntry, item: RunItem): void {
    this.commitTx([[entry, item]]);
  }

  /** Several finished items in one transaction (all or none). */
  commitAll(items: [JournalEntry, RunItem][]): void {
    if (items.length > 0) this.commitTx(items);
  }

  runItems(runId: string): RunItem[] {
    const rows = this.db.prepare("SELECT stage, op, item_id, key, cached FROM run_items WHERE run_id = ? ORDER BY stage, op, item_id").all(runId) as {
      stage: string;
      op: string;
      item_id: string;
      key: string;
      cached: number;
    }[];
    return rows.map((r) => ({ stage: r.stage, op: r.op, itemId: r.item_id, key: r.key, cached: r.cached === 1 }));
  }

  rememberWorker(specDigest: string, fingerprint: unknown): void {
    this.db.prepare("INSERT OR REPLACE INTO worker_fingerprints (spec_digest, fingerprint, seen_at) VALUES (?, ?, ?)").run(specDigest, JSON.stringify(fingerprint), new Date().toISOString());
  }

  /** The fingerprint last seen for a worker configuration (what `plan` predicts hits with). */
  knownWorker(specDigest: string): unknown {
    const row = this.db.prepare("SELECT fingerprint FROM worker_fingerprints WHERE spec_digest = ?").get(specDigest) as { fingerprint: string } | undefined;
    return row ? (JSON.parse(row.fingerprint) as unknown) : undefined;
  }

  close(): void {
    this.db.close();
  }
}
