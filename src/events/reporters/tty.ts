// Human output: progress bars redrawn in place on a TTY, plain lines otherwise.
import type { Listener } from "../bus.js";
import type { EventOf, RunEvent } from "../types.js";

export interface TtyOptions {
  write: (text: string) => void;
  isTTY: boolean;
  width?: number;
  /** The line for a stage's own event (each stage says how it reads); null prints none. */
  stageLine?: (e: RunEvent) => string | null;
}

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
  // Each starting worker's latest load step: redrawn on a TTY; otherwise a line per new step and at a counted step's end.
  const loading = new Map<string, EventOf<"worker.loading">>();
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
    parts.push(...[...loading.values()].map((e) => loadingText(e, true)));
    opts.write(`\r\x1b[2K${parts.join("  ")}`.slice(0, (opts.width ?? 160) + 8));
    drawn = true;
  };
  return (e: RunEvent) => {
    switch (e.type) {
      case "run.started":
        return line(`run ${e.runId} → ${e.runDir}`);
      case "worker.starting":
        return line(`worker ${e.worker}${e.replica ? `#${e.replica}` : ""} (${e.kind}) starting; log: ${e.logPath}`);
      case "worker.loading": {
        const key = workerLabel(e);
        const before = loading.get(key);
        loading.set(key, e);
        if (opts.isTTY) {
          clear();
          redraw();
        } else if (before?.step !== e.step || (e.total > 0 && e.done === e.total && before.done !== e.done)) line(loadingText(e));
        return;
      }
      case "worker.stopped":
        loading.delete(workerLabel(e));
        return;
      case "worker.ready":
        loading.delete(workerLabel(e));
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
        return line(e.status === "succeeded" ? `run ${e.runId} succeeded in ${e.seconds.toFixed(1)}s` : `run ${e.runId} failed: ${e.error?.message ?? "unknown error"}`);
      default: {
        const text = opts.stageLine?.(e);
        if (text) line(text);
        return;
      }
    }
  };
}
