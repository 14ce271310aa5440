// The one cached-batch runner every stage uses: batches from a source go to the worker's
// replicas (WorkerPool.runBatches: pipelining, requeue, restarts); a batch whose every item
// is journaled is reused without a model call; otherwise the call runs with its deadline
// and the run's signal, a dead worker's RPC error becomes a crash naming it, and each
// result is handed to the stage and journaled unless its failure may not repeat.
import type { StageName } from "../config/schema.js";
import type { ErrorInfo } from "../events/types.js";
import type { CallControl } from "../workers/grpc-util.js";
import type { CachedItem } from "./item-cache.js";
import { guarded } from "./stage-util.js";
import type { StageContext } from "./stage.js";
import type { BatchSource, RunningWorker } from "./worker-pool.js";

/** One computed result of a call, under the id it arrived as. */
export interface Computed<R> {
  id: string;
  result: R;
  /** Store artifacts the result names: a reused result whose artifacts are gone is recomputed. */
  artifacts?: string[];
  /** The result carries a failure that may not repeat (a retry could succeed): never journaled. */
  transient?: boolean;
}

/** Where a result came from: its batch position (-1 when the id was not in the batch), the replica, and whether the journal gave it. */
export interface ResultOrigin<B> {
  batch: B;
  index: number;
  replica: RunningWorker;
  cached: boolean;
}

export interface CachedBatches<B, R> {
  stage: StageName;
  /** The journal's op name (OPS in plan/item-keys.ts). */
  op: string;
  worker: string;
  source: BatchSource<B>;
  /** Items of a batch (for the deadline and requeue events); default: its length, or 1. */
  size?: (batch: B) => number;
  /** The batch's cached items, in batch order, keyed for this replica's fingerprint. */
  items: (batch: B, replica: RunningWorker) => CachedItem[];
  /** Ids results arrive under, in batch order, when they are not the items' own ids. */
  resultIds?: (batch: B, items: CachedItem[]) => string[];
  /** The RPC: yields each computed result of the batch. */
  call: (replica: RunningWorker, batch: B, options: CallControl) => AsyncIterable<Computed<R>>;
  /** The RPC's name, for a crash's message. */
  rpc: string;
  onResult: (result: R, origin: ResultOrigin<B>) => void;
  /**
   * The result of an item the call ended without (a model that returned nothing for it),
   * handed to onResult and never journaled; so every item of a finished call has a result
   * and nothing waits for one that will not come.
   */
  missing?: (id: string) => R;
  /** Only this batch of results counts as work units for the deadline (default: size). */
  deadlineItems?: (batch: B) => number;
}

/** The failure of an item a worker's call ended without (never journaled: a retry may give it). */
export function noResult(worker: string): ErrorInfo {
  return { code: "no_result", message: `${worker} ended its call without a result for this item` };
}

const lengthOf = (batch: unknown) => (Array.isArray(batch) ? batch.length : 1);

export async function runCachedBatches<B, R>(ctx: StageContext, spec: CachedBatches<B, R>, signal: AbortSignal): Promise<void> {
  const { pool, cache } = ctx;
  const size = spec.size ?? lengthOf;
  await pool.runBatches(
    spec.worker,
    spec.source,
    size,
    async (replica, batch) => {
      const items = spec.items(batch, replica);
      const ids = spec.resultIds?.(batch, items) ?? items.map((i) => i.id);
      const itemOf = cache.batch<R>(spec.stage, spec.op, items, (r, index) => spec.onResult(r, { batch, index, replica, cached: true }), ids);
      if (!itemOf) return;
      const indexOf = new Map(ids.map((id, i) => [id, i]));
      const options = { deadlineMs: pool.deadlineMs(replica, (spec.deadlineItems ?? size)(batch)), signal };
      const seen = new Set<string>();
      try {
        for await (const c of guarded(pool, replica, spec.rpc, spec.call(replica, batch, options))) {
          seen.add(c.id);
          spec.onResult(c.result, { batch, index: indexOf.get(c.id) ?? -1, replica, cached: false });
          cache.computed(spec.stage, spec.op, itemOf(c.id), c.result, c.artifacts ?? [], !c.transient);
        }
        if (spec.missing) for (const [id, index] of indexOf) if (!seen.has(id)) spec.onResult(spec.missing(id), { batch, index, replica, cached: false });
      } finally {
        // What the call finished is journaled even when it then failed (a crashed worker's results stand).
        cache.flush();
      }
    },
    signal,
  );
}
