import type { RunEvent, RunEventBody } from "./types.js";

export type Listener = (event: RunEvent) => void;

/** Synchronous fan-out: every listener sees every event, in order. */
export class EventBus {
  private readonly listeners: Listener[] = [];

  subscribe(listener: Listener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  emit(body: RunEventBody): void {
    const event = { ts: new Date().toISOString(), ...body } as RunEvent;
    for (const l of this.listeners) l(event);
  }
}
