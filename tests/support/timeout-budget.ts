// A vitest reporter that keeps every test well inside its timeout: it names each test that
// took more than 40% of its own timeout (so it would not pass with one core busy), and with
// PDS_DPO_TIMEOUT_REPORT=1 prints the ten tests closest to their timeouts.
import type { Reporter, TestCase, TestModule } from "vitest/node";

const BUDGET = 0.4;

interface Row {
  name: string;
  ms: number;
  timeout: number;
}

export default class TimeoutBudget implements Reporter {
  private readonly rows: Row[] = [];
  private defaultTimeout = 5_000;

  onInit(ctx: { config: { testTimeout: number } }): void {
    this.defaultTimeout = ctx.config.testTimeout;
  }

  onTestCaseResult(test: TestCase): void {
    const ms = test.diagnostic()?.duration;
    if (ms === undefined || test.result().state !== "passed") return;
    this.rows.push({ name: `${test.module.moduleId.replace(/^.*?\/tests\//, "tests/")} > ${test.fullName}`, ms, timeout: test.options.timeout ?? this.defaultTimeout });
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>): void {
    const ratio = (r: Row) => r.ms / r.timeout;
    const line = (r: Row) => `  ${(100 * ratio(r)).toFixed(0).padStart(3)}% of ${r.timeout / 1000}s (${(r.ms / 1000).toFixed(1)}s): ${r.name}`;
    const sorted = [...this.rows].sort((a, b) => ratio(b) - ratio(a));
    const over = sorted.filter((r) => ratio(r) > BUDGET);
    if (over.length) process.stdout.write(`\nTests over ${BUDGET * 100}% of their timeout (give them a longer one, or make them faster):\n${over.map(line).join("\n")}\n`);
    if (process.env.PDS_DPO_TIMEOUT_REPORT) process.stdout.write(`\nTests closest to their timeout:\n${sorted.slice(0, 10).map(line).join("\n")}\n`);
  }
}
