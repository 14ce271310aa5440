// Human output: progress bars redrawn in place on a TTY, plain lines otherwise.
import type { Listener } from "../bus.js";
import type { EventOf, RunEvent } from "../types.js";

export interface TtyOptions {
  write: (text: string) => void;
  isTTY: boolean;
  width?: number;
  /** The line for a stage's own event (each stage says how it reads); null prints none. */
  stageLine?: (e: RunEvent) => string | null;
  /** Milliseconds now (tests); a TTY redraws starting workers' elapsed time every second. */
  now?: () => number;
}

/** How often a TTY redraws the elapsed time of starting workers. */
export const TICK_MS = 1000;

export function bar(done: number, total: number, width = 24): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(frac * width);
  return `${"█".repeat(full)}${"░".repeat(width - full)}`;
}

const workerLabel = (e: { worker: string; replica: number }) => `${e.worker}${e.replica ? `#${e.replica}` : ""}`;

/** What a starting worker is doing: its step, N/M when counted, and the time since its start. */
export function loadingText(e: EventOf<"worker.loading">, withBar = false): string {
  const count = e.total > 0 ? ` ${withBar ? `${bar(e.done, e.total, 16)} ` : ""}${e.done}/${e.total}` : "";
  return `worker ${workerLabel(e)}: ${e.step}${count} (${e.seconds.toFixed(1)}s)`;
}

export function ttyReporter(opts: TtyOptions): Listener {
  const progress = new Map<string, { done: number; total: number }>();
  // Each starting worker: since when, and its latest load step. On a TTY redrawn with the time
  // ticking (also before its first step, while its process starts); otherwise a line per new
  // step and at a counted step's end.
  const loading = new Map<string, { since: number; step?: EventOf<"worker.loading"> }>();
  const now = opts.now ?? Date.now;
  let ticker: ReturnType<typeof setInterval> | undefined;
  const tick = () => {
    if (opts.isTTY && loading.size > 0 && !ticker) {
      ticker = setInterval(() => {
        clear();
        redraw();
      }, TICK_MS);
      // Never what keeps the process alive.
      ticker.unref?.();
    } else if (loading.size === 0 && ticker) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };
  const done = (key: string) => {
    loading.delete(key);
    tick();
  };
  const loadingPart = (key: string, l: { since: number; step?: EventOf<"worker.loading"> }) => {
    const seconds = (now() - l.since) / 1000;
    return l.step ? loadingText({ ...l.step, seconds }, true) : `worker ${key}: starting (${seconds.toFixed(1)}s)`;
  };
  let drawn = false;
  const clear = () => {
    if (opts.isTTY && drawn) opts.write("\r\x1b[2K");
    drawn = false;
  };
  const line = (text: string) => {
    clear();
    opts.write(`${text}\n`);
    redraw();
  };
  const redraw = () => {
    if (!opts.isTTY || progress.size + loading.size === 0) return;
    const parts = [...progress].map(([step, p]) => (p.total > 0 ? `${step} ${bar(p.done, p.total, 16)} ${p.done}/${p.total}` : `${step} …`));
    parts.push(...[...loading].map(([key, l]) => loadingPart(key, l)));
    opts.write(`\r\x1b[2K${parts.join("  ")}`.slice(0, (opts.width ?? 160) + 8));
    drawn = true;
  };
  return (e: RunEvent) => {
    switch (e.type) {
      case "run.started":
        return line(`run ${e.runId} → ${e.runDir}`);
      case "worker.starting":
        loading.set(workerLabel(e), { since: now() });
        tick();
        return line(`worker ${e.worker}${e.replica ? `#${e.replica}` : ""} (${e.kind}) starting; log: ${e.logPath}`);
      case "worker.loading": {
        const key = workerLabel(e);
        const before = loading.get(key)?.step;
        // The pool's clock is the worker's: the ticking time goes on from the event's.
        loading.set(key, { since: now() - e.seconds * 1000, step: e });
        tick();
        if (opts.isTTY) {
          clear();
          redraw();
        } else if (before?.step !== e.step || (e.total > 0 && e.done === e.total && before.done !== e.done)) line(loadingText(e));
        return;
      }
      case "worker.stopped":
        done(workerLabel(e));
        return;
      case "worker.ready":
        done(workerLabel(e));
        return line(`worker ${e.worker}${e.replica ? `#${e.replica}` : ""} ready at ${e.address} in ${e.seconds.toFixed(1)}s`);
      case "worker.requeued":
        return line(`warning: worker ${e.worker}#${e.replica} died; its batch of ${e.items} items is requeued and the replica restarted`);
      case "stage.started":
        return line(`stage ${e.stage}: ${e.total} items`);
      case "stage.progress": {
        const key = `${e.stage}/${e.step}`;
        // A finished or uncounted step of the stage (the trainer's "loading the model") gives way to the next.
        for (const [k, p] of progress) if (k !== key && k.startsWith(`${e.stage}/`) && p.done >= p.total) progress.delete(k);
        progress.set(key, { done: e.done, total: e.total });
        if (opts.isTTY) redraw();
        else if (e.done === e.total) line(e.total > 0 ? `${key} ${e.done}/${e.total}` : key);
        return;
      }
      case "stage.finished": {
        for (const k of [...progress.keys()]) if (k.startsWith(`${e.stage}/`)) progress.delete(k);
        const counts = Object.entries(e.counts).map(([k, v]) => `${k}=${v}`).join(" ");
        return line(`stage ${e.stage} ${e.status} in ${e.seconds.toFixed(1)}s: ${counts}`);
      }
      case "warning":
        return line(`warning: ${e.message}`);
      case "run.finished":
        progress.clear();
        loading.clear();
        tick();
        return line(e.status === "succeeded" ? `run ${e.runId} succeeded in ${e.seconds.toFixed(1)}s` : `run ${e.runId} failed: ${e.error?.message ?? "unknown error"}`);
      default: {
        const text = opts.stageLine?.(e);
        if (text) line(text);
        return;
      }
    }
  };
}
