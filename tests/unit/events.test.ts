import { describe, expect, it, vi } from "vitest";
import { EventBus } from "../../src/events/bus.js";
import { jsonLinesReporter } from "../../src/events/reporters/json-lines.js";
import { bar, loadingText, ttyReporter } from "../../src/events/reporters/tty.js";

describe("event reporters", () => {
  it("every subscriber sees every event, stamped, in order", () => {
    const bus = new EventBus();
    const lines: string[] = [];
    bus.subscribe(jsonLinesReporter((l) => lines.push(l)));
    bus.emit({ type: "stage.started", stage: "images", total: 3 });
    bus.emit({ type: "warning", message: "w" });
    expect(lines.map((l) => JSON.parse(l).type)).toEqual(["stage.started", "warning"]);
    expect(JSON.parse(lines[0]!).ts).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("draws proportional bars", () => {
    expect(bar(0, 4, 8)).toBe("░░░░░░░░");
    expect(bar(2, 4, 8)).toBe("████░░░░");
    expect(bar(9, 4, 8)).toBe("████████");
    expect(bar(0, 0, 4)).toBe("░░░░");
  });

  it("prints plain lines without a TTY and redraws progress in place on one", () => {
    for (const isTTY of [false, true]) {
      let out = "";
      const bus = new EventBus();
      bus.subscribe(ttyReporter({ write: (t) => (out += t), isTTY }));
      bus.emit({ type: "stage.started", stage: "images", total: 2 });
      bus.emit({ type: "stage.progress", stage: "images", step: "generate", done: 1, total: 2 });
      bus.emit({ type: "stage.progress", stage: "images", step: "generate", done: 2, total: 2 });
      bus.emit({ type: "stage.finished", stage: "images", status: "succeeded", counts: { kept: 2 }, seconds: 1.25 });
      expect(out).toContain("stage images: 2 items\n");
      expect(out).toContain("stage images succeeded in 1.3s: kept=2\n");
      if (isTTY) expect(out).toContain("\r\x1b[2Kimages/generate ████████████████ 2/2");
      else expect(out).toContain("images/generate 2/2\n");
      if (!isTTY) expect(out).not.toContain("\r");
    }
  });

  it("shows a starting worker's load steps with the time since its start, then its ready line", () => {
    const step = (s: string, done: number, total: number, seconds: number) => ({ type: "worker.loading" as const, worker: "dpo", replica: 0, step: s, done, total, seconds });
    expect(loadingText({ ...step("loading weights", 3, 12, 4.26), ts: "" })).toBe("worker dpo: loading weights 3/12 (4.3s)");
    expect(loadingText({ ...step("building the tiny model llava", 0, 0, 0.5), replica: 1, ts: "" })).toBe("worker dpo#1: building the tiny model llava (0.5s)");
    for (const isTTY of [false, true]) {
      let out = "";
      const bus = new EventBus();
      bus.subscribe(ttyReporter({ write: (t) => (out += t), isTTY }));
      bus.emit(step("building the tiny model llava", 0, 0, 0.2));
      bus.emit(step("loading weights", 0, 12, 1.5));
      bus.emit(step("loading weights", 6, 12, 2));
      bus.emit(step("loading weights", 12, 12, 2.5));
      bus.emit({ type: "worker.ready", worker: "dpo", replica: 0, kind: "dpo-trainer", address: "a", pid: 1, info: {}, runtime: {}, fingerprint: null, seconds: 3 });
      bus.emit({ type: "stage.progress", stage: "train", step: "steps", done: 1, total: 2 });
      if (isTTY) {
        expect(out).toContain("\r\x1b[2Kworker dpo: loading weights ████████░░░░░░░░ 6/12 (2.0s)");
        // Once ready, the worker's step is gone from what is redrawn.
        expect(out.slice(out.lastIndexOf("\r"))).toBe("\r\x1b[2Ktrain/steps ████████░░░░░░░░ 1/2");
      } else {
        // A line per new step and at a counted step's end, never one per update.
        expect(out.split("\n").filter((l) => l.startsWith("worker dpo:"))).toEqual([
          "worker dpo: building the tiny model llava (0.2s)",
          "worker dpo: loading weights 0/12 (1.5s)",
          "worker dpo: loading weights 12/12 (2.5s)",
        ]);
      }
      expect(out).toContain("worker dpo ready at a in 3.0s\n");
    }
  });

  it("shows the trainer's own load steps as stage progress, each giving way to the next", () => {
    for (const isTTY of [false, true]) {
      let out = "";
      const bus = new EventBus();
      bus.subscribe(ttyReporter({ write: (t) => (out += t), isTTY }));
      bus.emit({ type: "stage.progress", stage: "train", step: "loading the model", done: 0, total: 0 });
      bus.emit({ type: "stage.progress", stage: "train", step: "loading weights", done: 2, total: 4 });
      bus.emit({ type: "stage.progress", stage: "train", step: "loading weights", done: 4, total: 4 });
      bus.emit({ type: "stage.progress", stage: "train", step: "steps", done: 1, total: 3 });
      if (isTTY) {
        expect(out).toContain("\r\x1b[2Ktrain/loading the model …");
        expect(out.slice(out.lastIndexOf("\r"))).toBe("\r\x1b[2Ktrain/steps █████░░░░░░░░░░░ 1/3");
      } else expect(out).toBe("train/loading the model\ntrain/loading weights 4/4\n");
    }
  });

  it("on a TTY, ticks a starting worker's elapsed time every second until it is ready, also before its first step", () => {
    vi.useFakeTimers();
    try {
      let t = 0;
      let out = "";
      const bus = new EventBus();
      bus.subscribe(ttyReporter({ write: (s) => (out += s), isTTY: true, now: () => t }));
      bus.emit({ type: "worker.starting", worker: "sd", replica: 0, kind: "image-generator", logPath: "sd.log" });
      t = 3000;
      vi.advanceTimersByTime(3000);
      expect(out.slice(out.lastIndexOf("\r"))).toBe("\r\x1b[2Kworker sd: starting (3.0s)");
      bus.emit({ type: "worker.loading", worker: "sd", replica: 0, step: "loading weights", done: 1, total: 2, seconds: 3.5 });
      t = 5000;
      vi.advanceTimersByTime(1000);
      expect(out.slice(out.lastIndexOf("\r"))).toBe("\r\x1b[2Kworker sd: loading weights ████████░░░░░░░░ 1/2 (5.5s)");
      bus.emit({ type: "worker.ready", worker: "sd", replica: 0, kind: "image-generator", address: "a", pid: 1, info: {}, runtime: {}, fingerprint: null, seconds: 6 });
      // Nothing left to tick: the timer is gone.
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
