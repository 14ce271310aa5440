import { experimentJsonSchemaText } from "../../config/json-schema.js";
import type { Output } from "../output.js";

/** Prints the experiment's JSON Schema (generated from the zod schema). */
export function schemaCommand(out: Output): number {
  out.stdout(experimentJsonSchemaText());
  return 0;
}
