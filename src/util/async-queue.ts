/** An unbounded async FIFO with close; `take(n)` waits for up to n items or the close. */
export class AsyncQueue<T> {
  private items: T[] = [];
  private closed = false;
  private waiter: (() => void) | null = null;

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
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    return this.items.splice(0, max);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

/** Takes batches of up to `size` from the queue until it is closed and drained. */
export async function drainInBatches<T>(queue: AsyncQueue<T>, size: number, handle: (batch: T[]) => Promise<void>): Promise<void> {
  for (;;) {
    const batch = await queue.take(size);
    if (batch.length === 0) return;
    await handle(batch);
  }
}
