// Typed clients of one worker: Describe, health, and the kind's streaming RPCs.
import { Metadata, type Client } from "@grpc/grpc-js";
import { HealthCheckRequest, HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.js";
import type { WorkerInfo } from "../gen/pdsdpo/v1/common.js";
import { ImageGeneratorServiceClient, type GenerateRequest, type GenerateResponse } from "../gen/pdsdpo/v1/image_generator.js";
import {
  ImageScorerServiceClient,
  type ImageScorerServiceScoreRequest,
  type ImageScorerServiceScoreResponse,
} from "../gen/pdsdpo/v1/image_scorer.js";
import { EvaluatorServiceClient, type EvaluateRequest, type EvaluateResponse } from "../gen/pdsdpo/v1/evaluator.js";
import { DpoTrainerServiceClient, type TrainRequest, type TrainResponse } from "../gen/pdsdpo/v1/dpo_trainer.js";
import { ResponderServiceClient, type RespondRequest, type RespondResponse } from "../gen/pdsdpo/v1/responder.js";
import {
  ResponseScorerServiceClient,
  type ResponseScorerServiceScoreRequest,
  type ResponseScorerServiceScoreResponse,
} from "../gen/pdsdpo/v1/response_scorer.js";
import { WorkerServiceClient } from "../gen/pdsdpo/v1/worker.js";
import { bearerInterceptor, CHANNEL_OPTIONS, insecure, readStream, toRpcError, type CallControl, type ConnectionOptions } from "./grpc-util.js";

export class WorkerClient {
  private readonly worker: WorkerServiceClient;
  private readonly health: HealthClient;
  private generator?: ImageGeneratorServiceClient;
  private imageScorer?: ImageScorerServiceClient;
  private responder?: ResponderServiceClient;
  private responseScorer?: ResponseScorerServiceClient;
  private trainer?: DpoTrainerServiceClient;
  private evaluator?: EvaluatorServiceClient;

  private readonly creds;
  private readonly options: object;

  constructor(readonly name: string, readonly address: string, connection: ConnectionOptions = {}) {
    this.creds = connection.credentials ?? insecure();
    this.options = { ...CHANNEL_OPTIONS, ...(connection.token ? { interceptors: [bearerInterceptor(connection.token)] } : {}) };
    this.worker = new WorkerServiceClient(address, this.creds, this.options);
    // One channel (one connection) shared by every service client of this worker.
    this.health = this.sibling(HealthClient);
  }

  private sibling<T extends Client>(ctor: new (address: string, creds: ReturnType<typeof insecure>, opts: object) => T): T {
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

  generate(req: GenerateRequest, ctl: CallControl): AsyncGenerator<GenerateResponse> {
    const c = (this.generator ??= this.sibling(ImageGeneratorServiceClient));
    return readStream((deadline) => c.generate(req, { deadline }), `${this.name}.Generate`, ctl);
  }

  scoreImages(req: ImageScorerServiceScoreRequest, ctl: CallControl): AsyncGenerator<ImageScorerServiceScoreResponse> {
    const c = (this.imageScorer ??= this.sibling(ImageScorerServiceClient));
    return readStream((deadline) => c.score(req, { deadline }), `${this.name}.Score`, ctl);
  }

  respond(req: RespondRequest, ctl: CallControl): AsyncGenerator<RespondResponse> {
    const c = (this.responder ??= this.sibling(ResponderServiceClient));
    return readStream((deadline) => c.respond(req, { deadline }), `${this.name}.Respond`, ctl);
  }

  scoreResponses(req: ResponseScorerServiceScoreRequest, ctl: CallControl): AsyncGenerator<ResponseScorerServiceScoreResponse> {
    const c = (this.responseScorer ??= this.sibling(ResponseScorerServiceClient));
    return readStream((deadline) => c.score(req, { deadline }), `${this.name}.Score`, ctl);
  }

  train(req: TrainRequest, ctl: CallControl): AsyncGenerator<TrainResponse> {
    const c = (this.trainer ??= this.sibling(DpoTrainerServiceClient));
    return readStream((deadline) => c.train(req, { deadline }), `${this.name}.Train`, ctl);
  }

  evaluate(req: EvaluateRequest, ctl: CallControl): AsyncGenerator<EvaluateResponse> {
    const c = (this.evaluator ??= this.sibling(EvaluatorServiceClient));
    return readStream((deadline) => c.evaluate(req, { deadline }), `${this.name}.Evaluate`, ctl);
  }

  close(): void {
    for (const c of [this.generator, this.imageScorer, this.responder, this.responseScorer, this.trainer, this.evaluator]) c?.close();
    this.health.close();
    this.worker.close();
  }
}

export { HealthCheckResponse_ServingStatus as ServingStatus };
