// What the stages use of the journal: reuse a batch whose every item is journaled with its
// artifacts intact, or record items as they are computed. Counts hits, computed items and
// model calls per stage for stage.finished and the manifest.
import type { StageName } from "../config/schema.js";
import type { EventBus } from "../events/bus.js";
import type { CacheCounts, CacheMode, ErrorInfo } from "../events/types.js";
import type { ContentStore } from "../store/cas.js";
import type { Journal, JournalEntry, RunItem } from "../store/journal.js";

export type { CacheCounts, CacheMode };

/** A score result of either scorer kind, as the stages keep it and the journal stores it. */
export interface ScoreOutcome {
  id: string;
  score?: number;
  components?: Record<string, number>;
  error?: ErrorInfo;
}

/** Keys in sorted order: a protobuf map arrives in whatever order the worker's library wrote it, and records are compared by their bytes. */
export const sortedKeys = <T>(o: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

export function scoreOutcome(s: { id: string; score: number; components: Record<string, number>; error?: ErrorInfo | undefined }): ScoreOutcome {
  return s.error ? { id: s.id, error: errorInfo(s.error) } : { id: s.id, score: s.score, components: sortedKeys(s.components) };
}

/** A failure a retry might not repeat (the worker did not mark it deterministic): never journaled. */
export function isTransient(e: ErrorInfo | undefined): boolean {
  return e !== undefined && !e.deterministic;
}

/** An item error from the wire, as events and the journal keep it. */
export function errorInfo(e: ErrorInfo): ErrorInfo {
  return { code: e.code, message: e.message, ...(e.deterministic ? { deterministic: true } : {}) };
}

export interface CachedItem {
  /** Unique within the op in a run (the journal's run_items key). */
  id: string;
  /** null: a part of the key cannot be known, so the item is never cached. */
  key: string | null;
}

/** Computed items committed together: one transaction per call's results or this many, not one per item. */
const GROUP_COMMIT = 256;

export class ItemCache {
  private readonly counts = new Map<StageName, CacheCounts>();
  private pending: [JournalEntry, RunItem][] = [];

  constructor(
    private readonly journal: Journal,
    private readonly store: ContentStore,
    private readonly runId: string,
    readonly mode: CacheMode,
    private readonly bus: EventBus,
  ) {}

  private stats(stage: StageName): CacheCounts {
    let c = this.counts.get(stage);
    if (!c) this.counts.set(stage, (c = { hits: 0, computed: 0, model_calls: 0 }));
    return c;
  }

  countsOf(stage: StageName): CacheCounts {
    return { ...this.stats(stage) };
  }

  /**
   * The journaled results of a whole batch, or null when any item is missing (the batch is
   * then computed again as a whole, since its items' outputs depend on one another).
   * A result whose artifact is gone or changed in the store is refused, and the user told.
   */
  reuseBatch<R>(stage: StageName, op: string, items: CachedItem[]): R[] | null {
    if (this.mode === "off" || items.length === 0) return null;
    const results: R[] = [];
    for (const item of items) {
      if (!item.key) return null;
      const entry = this.journal.lookup(item.key);
      if (!entry || (this.mode === "own-run" && entry.runId !== this.runId)) return null;
      const broken = entry.artifacts.find((sha) => !this.store.intact(sha));
      if (broken) {
        this.bus.emit({ type: "warning", message: `cached ${op} of ${item.id}: artifact ${broken.slice(0, 12)} is missing or changed in the store; recomputing it` });
        return null;
      }
      results.push(entry.result as R);
    }
    this.journal.commitAll(items.map((item) => [{ key: item.key!, op, result: null, artifacts: [], runId: this.runId }, { stage, op, itemId: item.id, key: item.key!, cached: true }]));
    this.stats(stage).hits += items.length;
    return results;
  }

  /**
   * One batch through the cache. When every item is journaled, each result goes to `reused`
   * and null comes back: no model call. Otherwise the model call is counted and what comes
   * back finds, for the id a result arrives under (`resultIds`, the items' own ids unless
   * the model reports others), the item to journal it as; an id the batch did not hold gets
   * an item that is never cached.
   */
  batch<R>(stage: StageName, op: string, items: CachedItem[], reused: (result: R, index: number) => void, resultIds = items.map((i) => i.id)): ((id: string) => CachedItem) | null {
    const hits = this.reuseBatch<R>(stage, op, items);
    if (hits) {
      hits.forEach(reused);
      return null;
    }
    this.modelCall(stage);
    const byId = new Map(resultIds.map((id, i) => [id, items[i]!]));
    return (id) => byId.get(id) ?? { id, key: null };
  }

  /** One model call about to be made (an RPC that computes items). */
  modelCall(stage: StageName): void {
    this.stats(stage).model_calls++;
  }

  /**
   * A computed item, committed after its artifacts are in the store (unless `journal` is
   * false: a failure that may not repeat). Commits are grouped: `flush` (after each call)
   * commits what came since, so a crash loses at most the items of the calls in flight.
   */
  computed(stage: StageName, op: string, item: CachedItem, result: unknown, artifacts: string[], journal = true): void {
    this.stats(stage).computed++;
    if (!item.key || !journal) return;
    this.pending.push([{ key: item.key, op, result, artifacts, runId: this.runId }, { stage, op, itemId: item.id, key: item.key, cached: false }]);
    if (this.pending.length >= GROUP_COMMIT) this.flush();
  }

  /** Commits the computed items not yet committed, in one transaction. */
  flush(): void {
    const items = this.pending;
    this.pending = [];
    this.journal.commitAll(items);
  }
}
