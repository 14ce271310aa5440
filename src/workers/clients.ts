// Typed clients of one worker: Describe, health, and any kind's server-streaming RPCs. A
// stage names the generated service client and method it calls, so a new worker kind adds
// nothing here.
import { Metadata, type ChannelCredentials, type Client, type ClientReadableStream } from "@grpc/grpc-js";
import { HealthCheckRequest, HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.js";
import type { WorkerInfo } from "../gen/pdsdpo/v1/common.js";
import { WorkerServiceClient } from "../gen/pdsdpo/v1/worker.js";
import { bearerInterceptor, CHANNEL_OPTIONS, insecure, readStream, toRpcError, type CallControl, type ConnectionOptions } from "./grpc-util.js";

/** A ts-proto generated service client class. */
export type ServiceClient<C extends Client> = new (address: string, creds: ChannelCredentials, options: object) => C;

export class WorkerClient {
  private readonly worker: WorkerServiceClient;
  private readonly health: HealthClient;
  private readonly services = new Map<ServiceClient<Client>, Client>();
  private readonly creds: ChannelCredentials;
  private readonly options: object;

  constructor(readonly name: string, readonly address: string, connection: ConnectionOptions = {}) {
    this.creds = connection.credentials ?? insecure();
    this.options = {
      ...CHANNEL_OPTIONS,
      ...(connection.keepaliveMs
        ? { "grpc.keepalive_time_ms": connection.keepaliveMs, "grpc.keepalive_timeout_ms": Math.min(20_000, connection.keepaliveMs), "grpc.keepalive_permit_without_calls": 1 }
        : {}),
      ...(connection.serverName ? { "grpc.ssl_target_name_override": connection.serverName, "grpc.default_authority": connection.serverName } : {}),
      ...(connection.token ? { interceptors: [bearerInterceptor(connection.token)] } : {}),
    };
    this.worker = new WorkerServiceClient(address, this.creds, this.options);
    // One channel (one connection) shared by every service client of this worker.
    this.health = this.sibling(HealthClient);
  }

  /** A client of another service on this worker's channel (its credentials, token and keepalive). */
  sibling<T extends Client>(ctor: ServiceClient<T>): T {
    return new ctor(this.address, this.creds, { ...this.options, channelOverride: this.worker.getChannel() });
  }

  /** SERVING, NOT_SERVING, ... ; rejects when the worker cannot be reached. */
  checkHealth(timeoutMs: number): Promise<HealthCheckResponse_ServingStatus> {
    return new Promise((resolve, reject) => {
      this.health.check(HealthCheckRequest.create({ service: "" }), new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) =>
        err ? reject(err) : resolve(res.status),
      );
    });
  }

  describe(timeoutMs = 30_000): Promise<WorkerInfo> {
    return new Promise((resolve, reject) => {
      this.worker.describe({}, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) =>
        err ? reject(toRpcError(err, `${this.name}.Describe`)) : resolve(res.info!),
      );
    });
  }

  /**
   * One server-streaming call of a kind's service: `start` opens it on the service's client
   * with the call's deadline; abort cancels it on the worker; errors name `<worker>.<rpc>`.
   */
  stream<C extends Client, T>(service: ServiceClient<C>, rpc: string, start: (client: C, deadline: Date) => ClientReadableStream<T>, ctl: CallControl): AsyncGenerator<T> {
    let client = this.services.get(service) as C | undefined;
    if (!client) this.services.set(service, (client = this.sibling(service)));
    const c = client;
    return readStream((deadline) => start(c, deadline), `${this.name}.${rpc}`, ctl);
  }

  close(): void {
    for (const c of this.services.values()) c.close();
    this.health.close();
    this.worker.close();
  }
}

export { HealthCheckResponse_ServingStatus as ServingStatus };
