import { DockerRuntime } from "./docker-runtime.js";
import { LocalRuntime } from "./local-runtime.js";
import { RuntimeRouter, type WorkerRuntime } from "./runtime.js";

/** The runtimes a run can use: local processes and docker containers. */
export function defaultRuntime(): WorkerRuntime {
  return new RuntimeRouter({ local: new LocalRuntime(), docker: new DockerRuntime() });
}
