import { describe, expect, it } from "vitest";
import type { Diagnostics } from "../../src/report/build.js";
import { renderReport } from "../../src/report/html.js";
import { barChart, lineChart } from "../../src/report/svg.js";

const base = { schema: "pds-dpo/diagnostics@1", run_id: "r1", status: "succeeded", stages: { images: { status: "succeeded", counts: { kept: 1 }, seconds: 1 } }, workers: [{ worker: "sd", kind: "image-generator", start_s: 0, ready_s: 1.5, stop_s: null }] };

describe("report page", () => {
  it("counts the marks each chart draws", () => {
    expect(barChart("b", ["x", "y"], [{ name: "n", values: [1, 2] }])).toContain('data-points="2"');
    expect(lineChart("l", [{ name: "loss", points: [[1, 0.7], [2, 0.6], [3, 0.5]] }])).toContain('data-points="3"');
    expect(lineChart("l", [])).toContain('data-points="0"');
  });

  it("shows stages that did not run as not run, not as empty charts", () => {
    const d = { ...base, images: null, responses: null, train: null, evaluate: null } as unknown as Diagnostics;
    const html = renderReport(d, []);
    for (const s of ["image stage", "response stage", "train stage", "evaluate stage"]) expect(html).toContain(`${s}: not run`);
    expect(html).not.toContain("<svg");
    // The workers' lifetimes: started, ready, not stopped.
    expect(html).toContain('<tr><td>sd</td><td>image-generator</td><td>0.0</td><td>1.5</td><td></td></tr>');
    expect(html).not.toMatch(/<script|https?:\/\//);
  });

  it("escapes answers in the gallery", () => {
    const d = { ...base, images: null, responses: null, train: null, evaluate: null } as unknown as Diagnostics;
    const html = renderReport(d, [{ id: "p", imageDataUri: "data:image/png;base64,AA==", instruction: "<b>q</b>", chosen: { text: "<script>x</script>", score: 1, model: "m" }, rejected: { text: "r", score: 0, model: "m" } }]);
    expect(html).toContain("&lt;script&gt;x&lt;/script&gt;");
    expect(html).not.toContain("<script>");
  });
});
