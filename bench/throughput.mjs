// Control-plane throughput: items/s through the scheduler (WorkerPool.runBatches), gRPC
// (streamed results) and the journal (one transaction per item) with the bench-only null
// scorer at 0 ms and 50 ms per item and 1, 8 and 32 replicas.
// Targets: >= 2,000 items/s with one replica at 0 ms; >= 90% of ideal with 32 replicas at 50 ms.
import { log, nullScorerPool, refBlob, scoreThrough, table, ContentStore, writeResult } from "./lib.mjs";

/** The case sizes: enough items for a few seconds of steady state each. */
function sizing(replicas, delayMs, scale) {
  if (delayMs === 0) return { items: Math.round(20_000 * scale), batch: 64 };
  // 50 ms per item: ~5 s ideal; batches small enough to spread over every replica.
  return { items: Math.max(replicas * 4, Math.round(replicas * 100 * scale)), batch: 4 };
}

export async function throughputBench({ quick = false } = {}) {
  const scale = quick ? 0.1 : 1;
  const cases = [];
  for (const delayMs of [0, 50]) for (const replicas of [1, 8, 32]) cases.push({ delayMs, replicas });
  const rows = [];
  for (const { delayMs, replicas } of cases) {
    const { items: n, batch } = sizing(replicas, delayMs, scale);
    log(`throughput: ${replicas} replica(s), ${delayMs} ms/item, ${n} items (batches of ${batch})`);
    const ctx = await nullScorerPool({ replicas, delayMs, batchSize: batch });
    try {
      // One tiny real artifact every item refers to (the null scorer does not read it).
      const image = new ContentStore(ctx.root).put(Buffer.from("bench"), "image/png");
      const items = Array.from({ length: n }, (_, i) => ({ id: `bench-${i}`, prompt: "p", image }));
      const t0 = performance.now();
      const done = await scoreThrough(ctx, items, batch, (c) => refBlob(c.image));
      const seconds = (performance.now() - t0) / 1000;
      if (done !== n) throw new Error(`throughput: ${done} of ${n} items came back`);
      const rate = n / seconds;
      const ideal = delayMs ? (replicas * 1000) / delayMs : null;
      rows.push({
        replicas,
        delay_ms: delayMs,
        items: n,
        batch,
        seconds,
        items_per_s: rate,
        ideal_items_per_s: ideal,
        efficiency: ideal ? rate / ideal : null,
        worker_start_s: ctx.startS,
        journal_rows: ctx.journal.runItems("bench").length,
      });
    } finally {
      await ctx.close();
    }
  }
  const one = rows.find((r) => r.replicas === 1 && r.delay_ms === 0);
  const wide = rows.find((r) => r.replicas === 32 && r.delay_ms === 50);
  const targets = {
    one_replica_0ms_items_per_s: { target: ">= 2000", value: one.items_per_s, met: one.items_per_s >= 2000 },
    replicas32_50ms_efficiency: { target: ">= 0.90", value: wide.efficiency, met: wide.efficiency >= 0.9 },
  };
  const path = writeResult("throughput", { quick, cases: rows, targets });
  console.log(`\nControl-plane throughput (${path})\n${table(rows.map((r) => ({ replicas: r.replicas, delay_ms: r.delay_ms, items: r.items, "items/s": r.items_per_s, ideal: r.ideal_items_per_s ?? "-", efficiency: r.efficiency ?? "-" })))}`);
  return { rows, targets };
}

if (import.meta.url === `file://${process.argv[1]}`) await throughputBench({ quick: process.argv.includes("--quick") });

