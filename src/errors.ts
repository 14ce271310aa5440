// Typed errors of the control plane. The CLI maps each to an exit code and one line;
// `--verbose` adds the stack. `retryable` is a property of the error, not of the caller.

export type ErrorCode =
  | "usage"
  | "config"
  | "worker_start"
  | "worker_crashed"
  | "rpc"
  | "integrity"
  | "replay_mismatch"
  | "stage_failed"
  | "benchmark_overlap"
  | "interrupted"
  | "internal";

export const EXIT = { ok: 0, failed: 1, usage: 2, replayMismatch: 3, interrupted: 130 } as const;

export class OrchestratorError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, opts: { exitCode?: number; retryable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = opts.exitCode ?? EXIT.failed;
    this.retryable = opts.retryable ?? false;
  }
}

export class UsageError extends OrchestratorError {
  constructor(message: string) {
    super("usage", message, { exitCode: EXIT.usage });
  }
}

/** One problem in experiment.yaml (or a file it names), located by key path and line. */
export interface ConfigIssue {
  path: string;
  message: string;
  line?: number;
}

/** Longest key path and message of one printed issue; the rest is cut with "…". */
export const MAX_ISSUE_PATH = 120;
export const MAX_ISSUE_MESSAGE = 300;
/** Issues a ConfigError prints; the rest are counted in one line. */
export const MAX_ISSUES = 20;

/** At most `max` characters, one line: control characters (a newline in a key) are escaped. */
function cut(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.slice(0, max).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return flat.length > max || text.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function formatIssue(issue: ConfigIssue): string {
  return `${cut(issue.path || "(document)", MAX_ISSUE_PATH)}: ${cut(issue.message, MAX_ISSUE_MESSAGE)}${issue.line ? ` (line ${issue.line})` : ""}`;
}

/** The first MAX_ISSUES issues, one a line, then "... and N more problems". */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  const lines = issues.slice(0, MAX_ISSUES).map(formatIssue);
  const more = issues.length - MAX_ISSUES;
  if (more > 0) lines.push(`... and ${more} more problem${more === 1 ? "" : "s"}`);
  return lines.join("\n");
}

export class ConfigError extends OrchestratorError {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super("config", formatIssues(issues), { exitCode: EXIT.usage });
    this.issues = issues;
  }
}

export class WorkerStartError extends OrchestratorError {
  constructor(message: string, cause?: unknown) {
    super("worker_start", message, { cause });
  }
}

export class WorkerCrashedError extends OrchestratorError {
  constructor(message: string, cause?: unknown) {
    super("worker_crashed", message, { retryable: true, cause });
  }
}

export class RpcError extends OrchestratorError {
  readonly grpcCode: number | undefined;

  constructor(message: string, grpcCode?: number, cause?: unknown) {
    // Deadline and unavailability are worth a retry; a rejected request is not.
    super("rpc", message, { retryable: grpcCode === 4 || grpcCode === 14, cause });
    this.grpcCode = grpcCode;
  }
}

export class IntegrityError extends OrchestratorError {
  constructor(message: string) {
    super("integrity", message);
  }
}

export class ReplayMismatchError extends OrchestratorError {
  constructor(message: string) {
    super("replay_mismatch", message, { exitCode: EXIT.replayMismatch });
  }
}

export class StageFailedError extends OrchestratorError {
  constructor(message: string) {
    super("stage_failed", message);
  }
}

/** A benchmark image the trainer saw (or one the overlap check cannot read): evaluation refused. */
export class BenchmarkOverlapError extends OrchestratorError {
  constructor(message: string) {
    super("benchmark_overlap", message);
  }
}

export class InterruptedError extends OrchestratorError {
  constructor() {
    super("interrupted", "interrupted; workers were stopped and finished items are kept in the store", { exitCode: EXIT.interrupted });
  }
}

/** Whether a retry may succeed: the first OrchestratorError on the cause chain says so. */
export function isRetryable(err: unknown): boolean {
  return findError(err, OrchestratorError)?.retryable ?? false;
}

/** Walks the cause chain, like Temporal's isGrpcDeadlineError helpers. */
export function findError<T extends Error>(err: unknown, cls: abstract new (...args: never[]) => T): T | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur instanceof Error && depth < 10; depth++) {
    if (cur instanceof cls) return cur;
    cur = cur.cause;
  }
  return undefined;
}
