import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/events/types.js";
import { readResumeEvents } from "../../src/cli/commands/resume.js";
import { EventBus } from "../../src/events/bus.js";
import { eventsFileReporter } from "../../src/events/reporters/json-lines.js";
import { carriedEvents, finishedStages, resultsFromEvents, stageOfEvent } from "../../src/pipeline/resume.js";
import { tempDir } from "../helpers.js";

const ts = "2026-01-01T00:00:00.000Z";
const artifact = { uri: "cas://sha256/ab", sha256: "ab", bytes: 3, mediaType: "image/png" };
const other = { uri: "cas://sha256/ef", sha256: "ef", bytes: 4, mediaType: "image/png" };
// The image stage's records, as it writes them: its results are read back from here.
const prompt = {
  id: "a-1",
  index: 0,
  category: "art",
  t2i_prompt: "a lighthouse",
  instruction: "<image> What?",
  candidates: [
    { id: "a-1.gs5.n0", guidance_scale: 5, image_number: 0, seed: 1, sha256: "ab", bytes: 3, uri: "cas://sha256/ab", defects: [], score: 0.5 },
    { id: "a-1.gs7.n0", guidance_scale: 7, image_number: 1, seed: 2, sha256: "ef", bytes: 4, uri: "cas://sha256/ef", defects: [], score: 0.25 },
  ],
  kept: { id: "a-1.gs5.n0", score: 0.5, path: "images/a-1.png", sha256: "ab" },
};
const records = { path: "records/images.jsonl", count: 1, bytes: 1, sha256: "00" };
const candidate = { id: "a-1.gs5.n0", promptId: "a-1", promptIndex: 0, category: "art", prompt: "a lighthouse", instruction: "<image> What?", negativePrompt: "", guidanceScale: 5, imageNumber: 0, steps: 2, width: 64, height: 64, seed: 1 };
const events = [
  { ts, type: "run.started", runId: "r", runDir: "/r", configFile: "/c", configSha256: "x", stages: ["images", "responses", "train"] },
  { ts, type: "worker.starting", worker: "sd", kind: "image-generator", logPath: "/l" },
  { ts, type: "stage.started", stage: "images", total: 1 },
  { ts, type: "image.generated", candidate, worker: "sd", artifact, defects: [] },
  { ts, type: "image.selected", promptId: "a-1", kept: "a-1.gs5.n0", score: 0.5, path: "images/a-1.png", sha256: "ab" },
  { ts, type: "image.records", records },
  { ts, type: "stage.finished", stage: "images", status: "succeeded", counts: {}, seconds: 1 },
  { ts, type: "stage.started", stage: "responses", total: 2 },
  { ts, type: "dataset.written", files: [{ path: "dataset/pairs.jsonl", sha256: "cd", bytes: 9 }], pairs: 1 },
  { ts, type: "stage.finished", stage: "responses", status: "succeeded", counts: {}, seconds: 1 },
  { ts, type: "stage.started", stage: "train", total: 4 },
  { ts, type: "train.step", step: 1, epoch: 0.1, metrics: { loss: 0.7 } },
  { ts, type: "stage.finished", stage: "train", status: "failed", counts: {}, seconds: 1 },
  { ts, type: "run.finished", runId: "r", status: "failed", seconds: 3 },
] as RunEvent[];

describe("resume", () => {
  it("knows each event's stage and which stages finished", () => {
    expect(events.map(stageOfEvent)).toEqual([null, null, "images", "images", "images", "images", "images", "responses", "responses", "responses", "train", "train", "train", null]);
    expect(finishedStages(events)).toEqual(["images", "responses"]);
  });

  it("carries the finished stages' events, and the worker events of workers not started again", () => {
    const stageEvents = ["stage.started", "image.generated", "image.selected", "image.records", "stage.finished", "stage.started", "dataset.written", "stage.finished"];
    expect(carriedEvents(events).map((e) => e.type)).toEqual(["worker.starting", ...stageEvents]);
    expect(carriedEvents(events, new Set(["sd"])).map((e) => e.type)).toEqual(stageEvents);
  });

  it("rebuilds the finished stages' results for the stages still to run, the images from the stage's records", () => {
    const runDir = tempDir();
    mkdirSync(join(runDir, "records"));
    writeFileSync(join(runDir, records.path), `${JSON.stringify(prompt)}\n`);
    const results = resultsFromEvents(events, runDir);
    expect(results.dataset).toEqual({ path: "dataset/pairs.jsonl", sha256: "cd", pairs: 1 });
    expect([...results.images!()]).toEqual([{ promptId: "a-1", promptIndex: 0, category: "art", t2iPrompt: "a lighthouse", instruction: "<image> What?", candidateId: "a-1.gs5.n0", guidanceScale: 5, score: 0.5, sha256: "ab", artifact, path: "images/a-1.png" }]);
    // The candidate not kept is the smoke-pope's.
    expect(results.unkept!()).toEqual([{ id: "a-1.gs7.n0", promptId: "a-1", category: "art", artifact: other }]);
    expect(resultsFromEvents([], runDir)).toEqual({});
  });

  it("reads events.jsonl a line at a time without the per-item events the records hold; a cut-short last line is left out, a bad earlier one refused", () => {
    const dir = tempDir();
    const path = join(dir, "events.jsonl");
    // Written by the run's own reporter, so the lines have the bus's shape.
    const bus = new EventBus();
    bus.subscribe(eventsFileReporter(path));
    for (const { ts: _, ...body } of events) bus.emit(body as never);
    const read = readResumeEvents(path);
    expect(read.map((e) => e.type)).toEqual(events.map((e) => e.type).filter((t) => t !== "image.generated" && t !== "image.selected"));
    expect(finishedStages(read)).toEqual(["images", "responses"]);
    writeFileSync(path, `${JSON.stringify(events[0])}\n{"ts":"x","type":"stage.sta`);
    expect(readResumeEvents(path)).toHaveLength(1);
    writeFileSync(path, `${JSON.stringify(events[0])}\n{"ts":"x","ty\n${JSON.stringify(events[0])}\n`);
    expect(() => readResumeEvents(path)).toThrow("events.jsonl line 2 is not JSON");
  });
});
