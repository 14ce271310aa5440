import { describe, expect, it } from "vitest";
import { parseCLI } from "../../src/cli/parse.js";
import { UsageError } from "../../src/errors.js";

describe("parseCLI", () => {
  it("parses run with its options", () => {
    expect(parseCLI(["run", "x.yaml", "--store", "/s", "--run-id", "r1", "--until", "images", "--json"])).toEqual({
      command: "run",
      config: "x.yaml",
      store: "/s",
      runId: "r1",
      until: "images",
      noCache: false,
      json: true,
      verbose: false,
    });
    expect(parseCLI(["run", "x.yaml", "--no-cache"])).toMatchObject({ command: "run", noCache: true });
  });

  it("takes --no-cache on run only", () => {
    expect(() => parseCLI(["resume", "r1", "--no-cache"])).toThrow(/resume takes no --run-id, --until or --no-cache/);
    expect(parseCLI(["plan", "x.yaml", "--store", "/s"])).toMatchObject({ command: "plan", store: "/s" });
  });

  it("defaults the store to .pds-dpo", () => {
    expect(parseCLI(["run", "x.yaml"])).toMatchObject({ store: ".pds-dpo", json: false });
  });

  it("parses validate, plan and workers check", () => {
    expect(parseCLI(["validate", "x.yaml"])).toEqual({ command: "validate", config: "x.yaml", verbose: false });
    expect(parseCLI(["plan", "x.yaml", "--json"])).toMatchObject({ command: "plan", json: true });
    expect(parseCLI(["workers", "check", "x.yaml"])).toMatchObject({ command: "workers-check", config: "x.yaml" });
  });

  it("turns bad usage into UsageError", () => {
    expect(() => parseCLI(["run"])).toThrow(UsageError);
    expect(() => parseCLI(["run", "x.yaml", "--until", "later"])).toThrow(/--until must be one of images, responses, train, evaluate/);
    expect(() => parseCLI(["frobnicate"])).toThrow(/unknown command 'frobnicate'/);
    expect(() => parseCLI(["run", "x.yaml", "--bogus"])).toThrow(UsageError);
    expect(() => parseCLI(["workers", "x.yaml"])).toThrow(/workers check/);
  });

  it("parses dataset export --format hf with its run, store, out and licence", () => {
    expect(parseCLI(["dataset", "export", "--format", "hf", "r1", "--store", "s", "--license", "mit"])).toEqual({ command: "dataset-export", runId: "r1", store: "s", format: "hf", out: undefined, license: "mit", verbose: false });
    expect(() => parseCLI(["dataset", "export", "r1"])).toThrow(/^dataset export needs --format hf/);
    expect(() => parseCLI(["dataset", "export", "--format", "csv", "r1"])).toThrow(/needs --format hf/);
    expect(() => parseCLI(["dataset", "export", "--format", "hf"])).toThrow(/usage: orchestrate dataset export --format hf <run-id>/);
  });

  it("shows help and version", () => {
    expect(parseCLI([])).toEqual({ command: "help" });
    expect(parseCLI(["--version"])).toEqual({ command: "version" });
  });

  it("parses runs, show, diff and schema; call's --json is its request, wherever it stands", () => {
    expect(parseCLI(["runs", "--store", "/s", "--json"])).toEqual({ command: "runs", store: "/s", json: true, verbose: false });
    expect(parseCLI(["show", "r1"])).toEqual({ command: "show", runId: "r1", store: ".pds-dpo", json: false, verbose: false });
    expect(parseCLI(["diff", "a", "b", "--json"])).toMatchObject({ command: "diff", runA: "a", runB: "b", json: true });
    expect(parseCLI(["schema"])).toEqual({ command: "schema" });
    const call = { command: "call", config: "e.yaml", worker: "sd", method: "WorkerService.Describe", store: "/s", verbose: false };
    expect(parseCLI(["call", "e.yaml", "sd", "WorkerService.Describe", "--store", "/s"])).toEqual({ ...call, request: "{}" });
    expect(parseCLI(["--store", "/s", "call", "--json", '{"a": 1}', "e.yaml", "sd", "WorkerService.Describe"])).toEqual({ ...call, request: '{"a": 1}' });
    expect(parseCLI(["call", "e.yaml", "sd", "WorkerService.Describe", "--json={}", "--store", "/s"])).toEqual({ ...call, request: "{}" });
    expect(() => parseCLI(["call", "e.yaml", "sd", "WorkerService.Describe", "--json"])).toThrow("--json needs the request");
    expect(() => parseCLI(["diff", "a"])).toThrow(UsageError);
    expect(() => parseCLI(["show"])).toThrow("usage: orchestrate show <run-id>");
  });
});
