import { describe, expect, it } from "vitest";
import { DEFAULT_BATCH_SIZE, WORKER_KINDS } from "../../src/config/schema.js";
import { WorkerKind } from "../../src/gen/pdsdpo/v1/common.js";
import { kindEnum } from "../../src/workers/kinds.js";

describe("worker kinds", () => {
  it("map to their own wire enum value by the proto's naming rule", () => {
    expect(kindEnum("responder")).toBe(WorkerKind.WORKER_KIND_RESPONDER);
    expect(kindEnum("dpo-trainer")).toBe(WorkerKind.WORKER_KIND_DPO_TRAINER);
    expect(new Set(WORKER_KINDS.map(kindEnum)).size).toBe(WORKER_KINDS.length);
  });

  it("refuses a kind the proto does not define, and every kind has a batch default", () => {
    expect(() => kindEnum("captioner" as never)).toThrow("worker kind 'captioner' has no WorkerKind value");
    for (const k of WORKER_KINDS) expect(DEFAULT_BATCH_SIZE[k]).toBeGreaterThan(0);
  });
});
