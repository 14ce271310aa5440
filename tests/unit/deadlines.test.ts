import { describe, expect, it } from "vitest";
import { WorkerSchema } from "../../src/config/schema.js";
import { callDeadlineMs } from "../../src/pipeline/worker-pool.js";

const worker = (kind: string, extra: Record<string, unknown> = {}) => WorkerSchema.parse({ kind, model: { source: "tiny", name: "x" }, ...extra });

describe("call deadlines", () => {
  it("come from a per-item estimate of the kind, for the call and the one queued before it, with a cap", () => {
    // 30 s + 120 s x 4 images x 2 calls: 16.5 minutes (was 80).
    expect(callDeadlineMs(worker("image-generator"), 4)).toBe(990_000);
    // 30 s + 30 s x 16 x 2 (was 5.3 hours).
    expect(callDeadlineMs(worker("image-scorer"), 16)).toBe(990_000);
    // A huge batch is capped at an hour; the whole training at 48 hours.
    expect(callDeadlineMs(worker("responder"), 1000)).toBe(3_600_000);
    expect(callDeadlineMs(worker("dpo-trainer"), 9000 * 2)).toBe(48 * 3_600_000);
    // Both are configurable.
    expect(callDeadlineMs(worker("image-scorer", { item_timeout_s: 1, call_timeout_s: 20 }), 16)).toBe(20_000);
    expect(callDeadlineMs(worker("image-scorer", { item_timeout_s: 1 }), 2)).toBe(34_000);
  });
});
