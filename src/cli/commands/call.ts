// `orchestrate call`: one worker of an experiment started (or reached, when remote) as a run
// starts it, any RPC called by name with a JSON request, each response printed as a JSON line.
import { join } from "node:path";
import { Client, Metadata } from "@grpc/grpc-js";
import { loadExperiment } from "../../config/load.js";
import { callTimeoutSOf } from "../../config/schema.js";
import { UsageError } from "../../errors.js";
import { EventBus } from "../../events/bus.js";
import { callDeadlineMs, WorkerPool } from "../../pipeline/worker-pool.js";
import type { ServiceClient, WorkerClient } from "../../workers/clients.js";
import { defaultRuntime } from "../../workers/default-runtime.js";
import { toRpcError } from "../../workers/grpc-util.js";
import { decodeJson, encodeJson, findMethod, loadProtos, RequestError, type RpcMethod } from "../../workers/proto-json.js";
import type { Output } from "../output.js";
import { checkLogsDir } from "./workers-check.js";

// The request and responses travel as bytes: proto-json converts them, so any method works.
const raw = (b: Buffer) => b;
const AnyService = Client as unknown as ServiceClient<Client>;

/** The request checked before any worker starts: the method exists and the JSON is one of its requests. */
function prepare(method: string, request: string): { rpc: RpcMethod; bytes: Buffer; items?: number; pd: ReturnType<typeof loadProtos> } {
  const pd = loadProtos();
  let json: unknown;
  try {
    json = JSON.parse(request);
  } catch (e) {
    throw new UsageError(`--json: not JSON: ${(e as Error).message.split("\n")[0]}`);
  }
  try {
    const rpc = findMethod(pd, method);
    if (rpc.requestStream) throw new RequestError(`${rpc.service}.${rpc.method} takes a stream of requests; call sends one request`, "method");
    const bytes = encodeJson(pd, rpc.requestType, json);
    const items = (json as { items?: unknown }).items;
    return { rpc, bytes, items: Array.isArray(items) ? Math.max(1, items.length) : undefined, pd };
  } catch (e) {
    if (e instanceof RequestError) throw new UsageError(e.part === "method" ? e.message : `--json: ${e.message}`);
    throw e;
  }
}

function unary(client: WorkerClient, rpc: RpcMethod, bytes: Buffer, deadlineMs: number, signal: AbortSignal): Promise<Buffer> {
  const c = client.sibling(AnyService);
  return new Promise((resolve, reject) => {
    const call = c.makeUnaryRequest(rpc.path, raw, raw, bytes, new Metadata(), { deadline: new Date(Date.now() + deadlineMs) }, (err, res) =>
      err ? reject(toRpcError(err, `${client.name}.${rpc.method}`)) : resolve(res!),
    );
    signal.addEventListener("abort", () => call.cancel(), { once: true });
  });
}

export async function callCommand(o: { config: string; worker: string; method: string; request: string; store: string }, out: Output, signal: AbortSignal): Promise<number> {
  const { rpc, bytes, items, pd } = prepare(o.method, o.request);
  const loaded = loadExperiment(o.config);
  const config = loaded.config.workers[o.worker];
  if (!config) throw new UsageError(`no worker '${o.worker}' in ${o.config} (workers: ${Object.keys(loaded.config.workers).join(", ")})`);
  const logs = checkLogsDir(o.store, `${loaded.config.name}-call`);
  const pool = new WorkerPool(defaultRuntime(), loaded, { storeRoot: o.store, logPath: (w) => join(logs, `${w}.log`) }, new EventBus());
  try {
    await pool.startAll([o.worker], signal);
    const { client } = pool.get(o.worker);
    // A batch of items: the deadline a run gives it; else (a training, an evaluation) the worker's cap on any call.
    const deadlineMs = items !== undefined ? callDeadlineMs(config, items) : callTimeoutSOf(config) * 1000;
    const print = (b: Buffer) => out.stdout(`${JSON.stringify(decodeJson(pd, rpc.responseType, b))}\n`);
    if (!rpc.responseStream) print(await unary(client, rpc, bytes, deadlineMs, signal));
    else {
      const stream = client.stream(AnyService, rpc.method, (c, deadline) => c.makeServerStreamRequest(rpc.path, raw, raw, bytes, new Metadata(), { deadline }), { deadlineMs, signal });
      for await (const msg of stream) print(msg as Buffer);
    }
  } finally {
    await pool.stopAll();
  }
  return 0;
}
