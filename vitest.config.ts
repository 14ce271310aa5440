import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

// Files that start real Python workers. The longest starts first and the whole tiny run goes
// last, so the two heaviest (each loads six or seven torch processes) never share the cores:
// beside each other, with one core busy elsewhere, they took 2.5 times as long. The other
// files fill the second slot meanwhile (the order from a fresh clone, before vitest has
// timings of its own).
const FIRST = [
  // Two tiny runs, one in containers, one local (tests/containers): the longest.
  "tests/containers/tiny-containers.test.ts",
  "tests/integration/crash-resume.test.ts",
  "tests/integration/failures.test.ts",
  "tests/integration/local-runtime.test.ts",
  "tests/integration/defective-models.test.ts",
  "tests/integration/remote-runtime.test.ts",
  "tests/integration/generated-code.test.ts",
  // The paper's configuration on its twins: eight workers, about 30 s alone.
  "tests/integration/paper-twin.test.ts",
  // configs/tiny-sweep.yaml (seven workers), then two train-only runs.
  "tests/integration/tiny-sweep.test.ts",
];
const LAST = ["tests/integration/tiny-run.test.ts"];
const IN_PROCESS = ["tests/unit/**/*.test.ts", "tests/stages/**/*.test.ts"];

class HeavyApart extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const path = relative(f.project.config.root, f.moduleId);
      if (LAST.includes(path)) return FIRST.length + 1;
      const i = FIRST.indexOf(path);
      return i < 0 ? FIRST.length : i;
    };
    const base = await super.sort(files);
    return base.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}

export default defineConfig({
  test: {
    // Real-worker tests (tests/integration) set their own timeouts from their measured time,
    // at 2.5 times or more of it so that they pass with one core busy; unit tests and stage
    // tests with test workers (tests/stages) take well under a second to seconds.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Do not run more files at once than this machine has cores (real workers use them).
    maxWorkers: 2,
    sequence: { sequencer: HeavyApart },
    // Tiny models are built once per test run, into a cache of the run's own (not the user's).
    env: { HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", PDS_DPO_TINY_CACHE: join(tmpdir(), `pdsdpo-test-tiny-${process.pid}`) },
    projects: [
      // Pure modules and stage logic on in-process test workers: one fork's modules serve
      // every file it runs (no test mocks modules or leaves globals changed), instead of each
      // file importing the sources, zod, grpc-js and the generated code again. Measured on
      // tests/unit + tests/stages: 131 -> 80 s CPU.
      { extends: true, test: { name: "in-process", include: IN_PROCESS, isolate: false } },
      // The files that start real workers (tests/integration, tests/containers) keep a fresh module graph each.
      { extends: true, test: { name: "processes", include: ["tests/**/*.test.ts"], exclude: IN_PROCESS } },
    ],
    // timeout-budget names any test over 40% of its timeout (PDS_DPO_TIMEOUT_REPORT=1: the ten closest).
    reporters: ["default", "./tests/support/timeout-budget.ts"],
  },
});
