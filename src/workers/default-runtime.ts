import { DockerRuntime } from "./docker-runtime.js";
import { LocalRuntime } from "./local-runtime.js";
import { RemoteRuntime } from "./remote-runtime.js";
import { RuntimeRouter, type WorkerRuntime } from "./runtime.js";

/** The runtimes a run can use: local processes, docker containers, remote endpoints. */
export function defaultRuntime(): WorkerRuntime {
  return new RuntimeRouter({ local: new LocalRuntime(), docker: new DockerRuntime(), remote: new RemoteRuntime() });
}
