// The `remote` runtime: workers started elsewhere (another host, a Kubernetes Service),
// one endpoint per replica. TLS and a bearer token are required off loopback. Before use,
// a worker must be SERVING and its Describe must match the expected kind and model; a
// mismatched worker is refused.
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { credentials, status } from "@grpc/grpc-js";
import { resolvePath } from "../config/load.js";
import { isLoopback, type RemoteRuntimeConfig } from "../config/schema.js";
import { WorkerStartError } from "../errors.js";
import { workerKindToJSON } from "../gen/pdsdpo/v1/common.js";
import { ServingStatus, WorkerClient } from "./clients.js";
import { isServiceError, type ConnectionOptions } from "./grpc-util.js";
import { kindEnum } from "./kinds.js";
import { toModelSpec } from "./model-spec.js";
import type { ExitInfo, WorkerHandle, WorkerRuntime, WorkerStartRequest, WorkerState } from "./runtime.js";

class RemoteWorker implements WorkerHandle {
  state: WorkerState = "SERVING";
  readonly pid = -1;
  readonly exited: Promise<ExitInfo>;
  private done!: (e: ExitInfo) => void;
  private exit: ExitInfo | null = null;

  constructor(
    readonly name: string,
    readonly kind: WorkerHandle["kind"],
    readonly address: string,
    readonly logPath: string,
    readonly runtimeInfo: Record<string, unknown>,
    readonly connection: ConnectionOptions,
  ) {
    this.exited = new Promise((resolve) => (this.done = resolve));
  }

  exitInfo(): ExitInfo | null {
    return this.exit;
  }

  // Not ours to stop: the run only lets go of it.
  async stop(): Promise<ExitInfo> {
    this.exit ??= { exitCode: 0, signal: null };
    this.state = "STOPPED";
    this.done(this.exit);
    return this.exit;
  }

  kill(): void {
    void this.stop();
  }
}

/** The addresses a name resolves to (a headless Service: one per ready pod). */
export type Lookup = (host: string) => Promise<string[]>;

const dnsLookup: Lookup = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

export class RemoteRuntime implements WorkerRuntime {
  constructor(private readonly opts: { lookup?: Lookup } = {}) {}

  /**
   * Replica i of a worker behind a Service: the i-th of the addresses its name resolves to, in
   * sorted order, once there are as many as replicas (pods still starting are waited for).
   */
  private async serviceEndpoint(req: WorkerStartRequest, rt: RemoteRuntimeConfig, signal?: AbortSignal): Promise<string> {
    const [host, port] = [rt.service!.slice(0, rt.service!.lastIndexOf(":")), rt.service!.slice(rt.service!.lastIndexOf(":") + 1)];
    const deadline = Date.now() + rt.start_timeout_s * 1000;
    let seen: string[] = [];
    let why = "";
    for (;;) {
      if (signal?.aborted) throw new WorkerStartError(`worker '${req.name}' at ${rt.service}: start was cancelled`);
      try {
        seen = [...new Set(await (this.opts.lookup ?? dnsLookup)(host))].sort();
      } catch (e) {
        why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      }
      if (seen.length > req.replica) {
        const address = seen[req.replica]!;
        return `${address.includes(":") ? `[${address}]` : address}:${port}`;
      }
      if (Date.now() > deadline) {
        throw new WorkerStartError(`worker '${req.name}' at ${rt.service}: ${seen.length} of ${req.replica + 1} replicas resolve within ${rt.start_timeout_s}s${why ? ` (${why})` : ""}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async start(req: WorkerStartRequest, signal?: AbortSignal): Promise<WorkerHandle> {
    const rt = req.config.runtime as RemoteRuntimeConfig;
    const endpoint = rt.service ? await this.serviceEndpoint(req, rt, signal) : rt.endpoints[req.replica]!;
    const serverName = rt.service ? rt.service.slice(0, rt.service.lastIndexOf(":")) : undefined;
    const where = `worker '${req.name}' at ${endpoint}${rt.service ? ` (${rt.service})` : ""}`;
    const token = process.env[rt.token_env] || undefined;
    if (!isLoopback(rt.service ?? endpoint) && !token) throw new WorkerStartError(`${where}: not on loopback, so a bearer token is required; set ${rt.token_env}`);
    const read = (p: string) => readFileSync(resolvePath(req.baseDir, p));
    let creds;
    try {
      creds = rt.tls ? credentials.createSsl(read(rt.tls.ca), rt.tls.key ? read(rt.tls.key) : null, rt.tls.cert ? read(rt.tls.cert) : null) : undefined;
    } catch (e) {
      throw new WorkerStartError(`${where}: cannot read its TLS files: ${(e as Error).message}`);
    }
    const connection: ConnectionOptions = { credentials: creds, token, ...(serverName && rt.tls ? { serverName } : {}) };
    const client = new WorkerClient(req.name, endpoint, connection);
    try {
      const deadline = Date.now() + rt.start_timeout_s * 1000;
      let last = "no answer";
      for (;;) {
        if (signal?.aborted) throw new WorkerStartError(`${where}: start was cancelled`);
        const s = await client.checkHealth(5000).catch((e: unknown) => {
          last = isServiceError(e) ? `${status[e.code]}: ${e.details}` : String(e);
          return null;
        });
        if (s === ServingStatus.SERVING) break;
        if (s !== null) last = "NOT_SERVING";
        if (Date.now() > deadline) throw new WorkerStartError(`${where}: not healthy within ${rt.start_timeout_s}s (${last})`);
        await new Promise((r) => setTimeout(r, 500));
      }
      const info = await client.describe().catch((e: unknown) => {
        const code = (e as { grpcCode?: number }).grpcCode;
        if (code === status.UNAUTHENTICATED) throw new WorkerStartError(`${where}: authentication failed: the worker refused the bearer token from ${rt.token_env}`);
        throw new WorkerStartError(`${where}: Describe failed: ${(e as Error).message}`);
      });
      const expectedKind = kindEnum(req.config.kind);
      const spec = toModelSpec(req.config.model, req.baseDir);
      const servedModel = info.model?.spec?.id || info.model?.spec?.path || "";
      const expectedModel = spec.id || spec.path;
      if (info.kind !== expectedKind || servedModel !== expectedModel) {
        throw new WorkerStartError(
          `${where}: serves a ${workerKindToJSON(info.kind)} with model '${servedModel}', but this worker is a ${workerKindToJSON(expectedKind)} with model '${expectedModel}'; refusing it`,
        );
      }
      const runtimeInfo = { type: "remote", endpoint, ...(rt.service ? { service: rt.service } : {}), tls: Boolean(rt.tls), token: Boolean(token) };
      return new RemoteWorker(req.name, req.config.kind, endpoint, req.logPath, runtimeInfo, connection);
    } finally {
      client.close();
    }
  }
}
