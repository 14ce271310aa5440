// Per-item seeds. `derived`: from the experiment seed and the item's stable id, so
// sharding, ordering, retries and replicas never change a result. `pds-dpo`: the
// published scripts' prompt_index * 1000 + image_number.
import { createHash } from "node:crypto";

export type SeedPolicy = "derived" | "pds-dpo";

/** A 48-bit seed: exact in a JS number and in every RNG's manual_seed. */
export function derivedSeed(experimentSeed: number, itemId: string): number {
  const digest = createHash("sha256").update(`pds-dpo/seed/v1\0${experimentSeed}\0${itemId}`).digest();
  return digest.readUIntBE(0, 6);
}

export function pdsDpoSeed(promptIndex: number, imageNumber: number): number {
  return promptIndex * 1000 + imageNumber;
}
