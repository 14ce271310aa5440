import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/events/bus.js";
import { jsonLinesReporter } from "../../src/events/reporters/json-lines.js";
import { bar, ttyReporter } from "../../src/events/reporters/tty.js";

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
});
