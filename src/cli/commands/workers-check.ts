import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadExperiment } from "../../config/load.js";
import { EventBus } from "../../events/bus.js";
import { WorkerInfo, workerKindToJSON } from "../../gen/pdsdpo/v1/common.js";
import { WorkerPool } from "../../pipeline/worker-pool.js";
import { newRunId } from "../../store/run-dir.js";
import { defaultRuntime } from "../../workers/default-runtime.js";
import type { Output } from "../output.js";

/** Where workers started outside a run log: <store>/checks/<id>/logs; the store itself is shared (tiny model cache). */
export function checkLogsDir(storeRoot: string, label: string): string {
  const logs = join(storeRoot, "checks", newRunId(label, new Date()), "logs");
  mkdirSync(logs, { recursive: true });
  return logs;
}

/** Starts each worker of the config, prints its Describe, stops it. */
export async function workersCheckCommand(config: string, storeRoot: string, json: boolean, out: Output): Promise<number> {
  const loaded = loadExperiment(config);
  const logs = checkLogsDir(storeRoot, `${loaded.config.name}-workers`);
  const bus = new EventBus();
  for (const name of Object.keys(loaded.config.workers)) {
    const pool = new WorkerPool(defaultRuntime(), loaded, { storeRoot, logPath: (w) => join(logs, `${w}.log`) }, bus);
    try {
      await pool.startAll([name]);
      const info = pool.get(name).info;
      if (json) out.stdout(`${JSON.stringify({ worker: name, info: WorkerInfo.toJSON(info) })}\n`);
      else {
        const m = info.model;
        out.stdout(
          `${name}: ${workerKindToJSON(info.kind)} ${m?.spec?.id || m?.spec?.path} (${m?.modelClass}) revision=${m?.resolvedRevision} weights=${m?.weightsSha256.slice(0, 12)} ` +
            `device=${info.device?.type}:${info.device?.name} image=${info.imageDigest || "-"} libs=${Object.entries(info.libraryVersions).map(([k, v]) => `${k}=${v}`).join(",")}\n`,
        );
      }
    } finally {
      await pool.stopAll();
    }
  }
  return 0;
}
