// Human output: progress bars redrawn in place on a TTY, plain lines otherwise.
import type { Listener } from "../bus.js";
import type { RunEvent } from "../types.js";

export interface TtyOptions {
  write: (text: string) => void;
  isTTY: boolean;
  width?: number;
}

export function bar(done: number, total: number, width = 24): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(frac * width);
  return `${"█".repeat(full)}${"░".repeat(width - full)}`;
}

export function ttyReporter(opts: TtyOptions): Listener {
  const progress = new Map<string, { done: number; total: number }>();
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
    if (!opts.isTTY || progress.size === 0) return;
    const parts = [...progress].map(([step, p]) => `${step} ${bar(p.done, p.total, 16)} ${p.done}/${p.total}`);
    opts.write(`\r\x1b[2K${parts.join("  ")}`.slice(0, (opts.width ?? 160) + 8));
    drawn = true;
  };
  return (e: RunEvent) => {
    switch (e.type) {
      case "run.started":
        return line(`run ${e.runId} → ${e.runDir}`);
      case "worker.starting":
        return line(`worker ${e.worker}${e.replica ? `#${e.replica}` : ""} (${e.kind}) starting; log: ${e.logPath}`);
      case "worker.ready":
        return line(`worker ${e.worker}${e.replica ? `#${e.replica}` : ""} ready at ${e.address} in ${e.seconds.toFixed(1)}s`);
      case "worker.requeued":
        return line(`warning: worker ${e.worker}#${e.replica} died; its batch of ${e.items} items is requeued and the replica restarted`);
      case "stage.started":
        return line(`stage ${e.stage}: ${e.total} items`);
      case "stage.progress": {
        const key = `${e.stage}/${e.step}`;
        progress.set(key, { done: e.done, total: e.total });
        if (opts.isTTY) redraw();
        else if (e.done === e.total) line(`${key} ${e.done}/${e.total}`);
        return;
      }
      case "image.generated":
        if (e.error) line(`warning: ${e.candidate.id}: ${e.error.message}`);
        else if (e.defects.length) line(`warning: ${e.candidate.id}: defective image (${e.defects.join(", ")}), not kept`);
        return;
      case "image.scored":
        if (e.error) line(`warning: ${e.id}: not scored: ${e.error.message}`);
        return;
      case "stage.finished": {
        for (const k of [...progress.keys()]) if (k.startsWith(`${e.stage}/`)) progress.delete(k);
        const counts = Object.entries(e.counts).map(([k, v]) => `${k}=${v}`).join(" ");
        return line(`stage ${e.stage} ${e.status} in ${e.seconds.toFixed(1)}s: ${counts}`);
      }
      case "train.step": {
        const m = e.metrics;
        const fmt = (k: string) => (m[k] === undefined ? "" : ` ${k.replace("rewards/", "")}=${m[k]!.toFixed(4)}`);
        return line(`train step ${e.step}${fmt("loss")}${fmt("rewards/margins")}${fmt("rewards/accuracies")}${fmt("learning_rate")}`);
      }
      case "train.checkpoint":
        return line(`train checkpoint at step ${e.step}: ${e.path}`);
      case "train.finished":
        return line(`train ${e.interrupted ? "interrupted" : "finished"} after ${e.steps} steps; adapter ${e.adapter.path} (sha256 ${e.adapter.sha256.slice(0, 12)})`);
      case "eval.result": {
        const m = e.metrics;
        return line(`eval ${e.benchmark}/${e.split} ${e.model}: accuracy=${m.accuracy?.toFixed(4)} precision=${m.precision?.toFixed(4)} recall=${m.recall?.toFixed(4)} f1=${m.f1?.toFixed(4)} unparseable=${m.unparseable}`);
      }
      case "warning":
        return line(`warning: ${e.message}`);
      case "run.finished":
        progress.clear();
        return line(e.status === "succeeded" ? `run ${e.runId} succeeded in ${e.seconds.toFixed(1)}s` : `run ${e.runId} failed: ${e.error?.message ?? "unknown error"}`);
      default:
        return;
    }
  };
}
