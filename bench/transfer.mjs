// Transfer: 1024x1024 PNGs to a worker by store reference (the worker reads the shared
// store and checks the hash) vs inline bytes in the request (gRPC carries them). One image
// per call, so the time per call is the per-image cost; MB/s is PNG bytes over that time.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { log, nullScorerPool, PYTHON, refBlob, scoreThrough, table, tempDir, writeResult } from "./lib.mjs";

/** Noise PNGs (incompressible, so a realistic ~3 MB each), written by Pillow. */
function makePngs(dir, count) {
  const script = `
import sys, numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for i in range(int(sys.argv[2])):
    Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/img{i:03d}.png")
`;
  execFileSync(PYTHON, ["-c", script, dir, String(count)]);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".png"))
    .sort()
    .map((f) => readFileSync(join(dir, f)));
}

export async function transferBench({ quick = false } = {}) {
  const count = quick ? 8 : 48;
  const pngDir = tempDir();
  log(`transfer: ${count} 1024x1024 PNGs`);
  const pngs = makePngs(pngDir, count);
  const ctx = await nullScorerPool({ replicas: 1, readImages: true, batchSize: 1 });
  const rows = [];
  try {
    const items = pngs.map((data, i) => ({ id: `img-${i}`, prompt: "p", image: ctx.store.put(data, "image/png"), data }));
    const bytes = items.reduce((s, c) => s + c.image.bytes, 0);
    const modes = {
      reference: (c) => refBlob(c.image),
      inline: (c) => ({ kind: { $case: "inline", value: c.data } }),
    };
    // A warm-up call per mode, then the timed pass.
    for (const [mode, blobOf] of Object.entries(modes)) {
      await scoreThrough(ctx, items.slice(0, 2), 1, blobOf);
      const t0 = performance.now();
      const done = await scoreThrough(ctx, items, 1, blobOf);
      const seconds = (performance.now() - t0) / 1000;
      if (done !== items.length) throw new Error(`transfer ${mode}: ${done} of ${items.length} images came back`);
      rows.push({ mode, images: items.length, mean_png_mb: bytes / items.length / 1e6, ms_per_image: (seconds * 1000) / items.length, mb_per_s: bytes / 1e6 / seconds });
    }
  } finally {
    await ctx.close();
  }
  const path = writeResult("transfer", { quick, image: "1024x1024 RGB noise PNG", cases: rows });
  console.log(`\nTransfer (${path})\n${table(rows)}`);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) await transferBench({ quick: process.argv.includes("--quick") });
