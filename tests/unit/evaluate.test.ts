import { describe, expect, it } from "vitest";
import { summaryTable } from "../../src/pipeline/stages/evaluate.js";
import { popeFromImages } from "../../src/plan/pope-from-run.js";

describe("POPE from a run's images", () => {
  it("asks one yes question about the image's own category and one no question about another", () => {
    const rows = popeFromImages([
      { promptId: "art-001", category: "art", path: "images/art-001.png" },
      { promptId: "weather-002", category: "weather", path: "images/weather-002.png" },
    ]);
    expect(rows).toEqual([
      { question_id: "art-001.yes", image: "images/art-001.png", text: "Is there a painting in the image?", label: "yes" },
      { question_id: "art-001.no", image: "images/art-001.png", text: "Is there a plate in the image?", label: "no" },
      { question_id: "weather-002.yes", image: "images/weather-002.png", text: "Is there a cloud in the image?", label: "yes" },
      { question_id: "weather-002.no", image: "images/weather-002.png", text: "Is there an animal in the image?", label: "no" },
    ]);
    expect(popeFromImages([])).toEqual([]);
  });
});

describe("eval summary table", () => {
  it("puts base and trained side by side with the delta", () => {
    const table = summaryTable([
      { benchmark: "pope", split: "random", model: "base", metrics: { accuracy: 0.861, precision: 0.891 } },
      { benchmark: "pope", split: "random", model: "trained", metrics: { accuracy: 0.876, precision: 0.978 } },
    ]);
    expect(table).toContain("| pope | random | accuracy | 0.8610 | 0.8760 | +0.0150 |");
    expect(table).toContain("| pope | random | precision | 0.8910 | 0.9780 | +0.0870 |");
    expect(table).toContain("| pope | random | recall | - | - | - |");
  });

  it("shows '-' for a model that did not run", () => {
    expect(summaryTable([{ benchmark: "pope", split: "run", model: "base", metrics: { accuracy: 0.5 } }])).toContain("| pope | run | accuracy | 0.5000 |\n");
    const table = summaryTable([
      { benchmark: "pope", split: "a", model: "base", metrics: { accuracy: 0.5 } },
      { benchmark: "pope", split: "a", model: "trained", metrics: { accuracy: 0.75 } },
      { benchmark: "pope", split: "b", model: "base", metrics: { accuracy: 0.5 } },
    ]);
    expect(table).toContain("| pope | b | accuracy | 0.5000 | - | - |");
  });

  it("takes any number of named variants, each with its delta from the base", () => {
    const table = summaryTable([
      { benchmark: "pope", split: "random", model: "base", metrics: { accuracy: 0.5 } },
      { benchmark: "pope", split: "random", model: "2k", metrics: { accuracy: 0.625 } },
      { benchmark: "pope", split: "random", model: "5k", metrics: { accuracy: 0.375 } },
    ]);
    expect(table.split("\n")[0]).toBe("| benchmark | split | metric | base | 2k | 5k | delta 2k | delta 5k |");
    expect(table).toContain("| pope | random | accuracy | 0.5000 | 0.6250 | 0.3750 | +0.1250 | -0.1250 |");
  });
});
