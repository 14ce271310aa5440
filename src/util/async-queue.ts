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

/** Pure: consecutive chunks of at most `size` items, in order. */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Forms batches from a fixed order of ids, not from arrival times: batch k holds the
 * accepted items among ids[k*size .. (k+1)*size) and is released once every one of those
 * ids has been resolved. So a batch is always the same set of items, however the work
 * before it was scheduled (replicas, retries), and results that depend on batch
 * composition stay reproducible.
 */
export class ChunkGate<T> {
  private readonly chunkOf = new Map<string, number>();
  private readonly pending: number[];
  private readonly accepted: (T | undefined)[][];
  private released = 0;
  readonly batches = new AsyncQueue<T[]>();

  constructor(ids: string[], private readonly size: number) {
    const n = Math.ceil(ids.length / size);
    this.pending = Array.from({ length: n }, (_, k) => Math.min(size, ids.length - k * size));
    this.accepted = Array.from({ length: n }, (_, k) => new Array<T | undefined>(this.pending[k]!));
    ids.forEach((id, i) => this.chunkOf.set(id, i));
    if (n === 0) this.batches.close();
  }

  /** Resolves one id: with an item to include, or with null to leave it out. Later calls for the id are ignored. */
  resolve(id: string, item: T | null): void {
    const i = this.chunkOf.get(id);
    if (i === undefined) return;
    this.chunkOf.delete(id);
    const k = Math.floor(i / this.size);
    if (item !== null) this.accepted[k]![i % this.size] = item;
    if (--this.pending[k]! > 0) return;
    const batch = this.accepted[k]!.filter((x): x is T => x !== undefined);
    if (batch.length > 0) this.batches.push(batch);
    if (++this.released === this.pending.length) this.batches.close();
  }

  /** The producer is done: ids it never reported are left out, and every chunk is released. */
  finish(): void {
    for (const id of [...this.chunkOf.keys()]) this.resolve(id, null);
    this.batches.close();
  }

  source(): { next(): Promise<T[] | null> } {
    return { next: async () => (await this.batches.take(1))[0] ?? null };
  }
}
