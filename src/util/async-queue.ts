/** An unbounded async FIFO with close; `take(n)` waits for up to n items or the close. Any number of takers may wait. */
export class AsyncQueue<T> {
  private items: T[] = [];
  private closed = false;
  private waiters: (() => void)[] = [];

  push(item: T): void {
    this.items.push(item);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  /** Resolves with 1..max items, or [] once closed and drained. */
  async take(max: number): Promise<T[]> {
    while (this.items.length < max && !this.closed) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.items.splice(0, max);
  }

  /** Every waiter checks again (one that finds nothing waits again). */
  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}

/** Waiters for a condition to change: `wait()` resolves at the next `wakeAll()` (the waiter then checks again). */
export class Waiters {
  private waiting: (() => void)[] = [];

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  wakeAll(): void {
    const ws = this.waiting;
    this.waiting = [];
    for (const w of ws) w();
  }
}

/** Pure: consecutive chunks of at most `size` items, in order. */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Forms batches from a fixed order of items, not from arrival times: batch k holds the
 * accepted items among positions [k*size, (k+1)*size) and is released once every one of
 * them has been resolved. So a batch is always the same set of items, however the work
 * before it was scheduled (replicas, retries), and results that depend on batch
 * composition stay reproducible. State exists only for slices with a position resolved and
 * not yet released, so a plan of a million items costs what is in flight.
 */
export class ChunkGate<T> {
  /** Per open slice: positions still unresolved, and the accepted items by offset. */
  private readonly open = new Map<number, { pending: number; accepted: (T | undefined)[] }>();
  private readonly done = new Set<number>();
  /** Every slice below this one is released. */
  private doneBelow = 0;
  private readonly chunkCount: number;
  private released = 0;
  private readonly indexOf: Map<string, number> | null;
  readonly batches = new AsyncQueue<T[]>();

  /** `items`: the ids in order, or how many positions there are (then resolved by `resolveAt`). */
  private readonly total: number;

  constructor(
    items: string[] | number,
    private readonly size: number,
  ) {
    this.total = typeof items === "number" ? items : items.length;
    this.indexOf = typeof items === "number" ? null : new Map(items.map((id, i) => [id, i]));
    this.chunkCount = Math.ceil(this.total / size);
    if (this.chunkCount === 0) this.batches.close();
  }

  /** Resolves one id: with an item to include, or with null to leave it out. Later calls for the id are ignored. */
  resolve(id: string, item: T | null): void {
    const i = this.indexOf?.get(id);
    if (i === undefined) return;
    this.indexOf!.delete(id);
    this.resolveAt(i, item);
  }

  /** Resolves the item at plan position i (each position once). */
  resolveAt(i: number, item: T | null): void {
    const k = Math.floor(i / this.size);
    if (i < 0 || i >= this.total || k < this.doneBelow || this.done.has(k)) return;
    let slice = this.open.get(k);
    if (!slice) this.open.set(k, (slice = { pending: Math.min(this.size, this.total - k * this.size), accepted: [] }));
    if (item !== null) slice.accepted[i % this.size] = item;
    if (--slice.pending > 0) return;
    this.release(k, slice.accepted);
  }

  private release(k: number, accepted: (T | undefined)[]): void {
    this.open.delete(k);
    // Released slices are remembered only until every earlier one is (then by the count).
    this.done.add(k);
    while (this.done.delete(this.doneBelow)) this.doneBelow++;
    const batch = accepted.filter((x): x is T => x !== undefined);
    if (batch.length > 0) this.batches.push(batch);
    if (++this.released === this.chunkCount) this.batches.close();
  }

  /** The producer is done: positions it never reported are left out, and every slice is released. */
  finish(): void {
    for (const [k, slice] of [...this.open]) this.release(k, slice.accepted);
    this.batches.close();
  }

  source(): { next(): Promise<T[] | null> } {
    return { next: async () => (await this.batches.take(1))[0] ?? null };
  }
}
