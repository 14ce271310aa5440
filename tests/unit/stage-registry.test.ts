import { describe, expect, it } from "vitest";
import { STAGES } from "../../src/config/schema.js";
import { EventBus } from "../../src/events/bus.js";
import type { RunEvent } from "../../src/events/types.js";
import { executeStage, type Stage, type StageContext } from "../../src/pipeline/stage.js";
import { stageLine, stageOfEvent, STAGE_REGISTRY } from "../../src/pipeline/stages/index.js";
import type { ItemCache } from "../../src/pipeline/item-cache.js";

describe("stage registry", () => {
  it("has one module per configured stage, in config order, and each event type belongs to one stage", () => {
    expect(STAGE_REGISTRY.map((s) => s.name)).toEqual([...STAGES]);
    const all = STAGE_REGISTRY.flatMap((s) => s.events);
    expect(new Set(all).size).toBe(all.length);
    for (const s of STAGE_REGISTRY) for (const type of s.events) expect(stageOfEvent({ type, ts: "" } as RunEvent)).toBe(s.name);
    expect(stageOfEvent({ type: "warning", message: "", ts: "" })).toBeNull();
  });

  it("lets each stage say how its own events read on the terminal", () => {
    const candidate = { id: "a.gs5.n0" } as never;
    expect(stageLine({ ts: "", type: "image.generated", candidate, worker: "sd", defects: [], error: { code: "x", message: "boom" } })).toBe("warning: a.gs5.n0: boom");
    expect(stageLine({ ts: "", type: "image.generated", candidate, worker: "sd", defects: [] })).toBeNull();
    expect(stageLine({ ts: "", type: "train.checkpoint", step: 3, path: "train/checkpoints/checkpoint-3" })).toBe("train checkpoint at step 3: train/checkpoints/checkpoint-3");
    expect(stageLine({ ts: "", type: "warning", message: "w" })).toBeNull();
  });
});

describe("executeStage", () => {
  const harness = (cached: boolean, run: Stage["run"]) => {
    const bus = new EventBus();
    const events: RunEvent[] = [];
    bus.subscribe((e) => events.push(e));
    const cache = { countsOf: () => ({ hits: 1, computed: 2, model_calls: 1 }) } as unknown as ItemCache;
    const ctx = { bus, cache } as unknown as StageContext;
    const stage = { ...STAGE_REGISTRY[0]!, cached, run } as Stage;
    return { events, go: () => executeStage(stage, ctx) };
  };

  it("owns started and finished, with the stage's total, progress and counts", async () => {
    const h = harness(true, async (_ctx, run) => {
      run.begin(4);
      run.begin(9);
      run.progress("generate", 4, 4);
      run.counts = { kept: 4 };
    });
    await h.go();
    expect(h.events.map((e) => e.type)).toEqual(["stage.started", "stage.progress", "stage.finished"]);
    expect(h.events[0]).toMatchObject({ stage: "images", total: 4 });
    expect(h.events[2]).toMatchObject({ stage: "images", status: "succeeded", counts: { kept: 4 }, cache: { hits: 1, computed: 2, model_calls: 1 } });
  });

  it("reports a failed stage with the counts it had reached, then rethrows", async () => {
    const h = harness(false, async (_ctx, run) => {
      run.counts.done = 3;
      throw new Error("worker died");
    });
    await expect(h.go()).rejects.toThrow("worker died");
    expect(h.events.map((e) => e.type)).toEqual(["stage.started", "stage.finished"]);
    expect(h.events[0]).toMatchObject({ total: 0 });
    expect(h.events[1]).toMatchObject({ status: "failed", counts: { done: 3 } });
    expect(h.events[1]).not.toHaveProperty("cache");
  });
});
