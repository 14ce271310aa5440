// The control plane validates model families against its own tables (config/families.ts);
// they must say what the Python workers really load and build.
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { MODEL_TYPES, TINY_MODELS } from "../../src/config/families.js";
import { ROOT } from "../helpers.js";

describe("model families", () => {
  it("the control plane's tables equal the workers' backend tables and tiny builders", async () => {
    const r = await execa(join(ROOT, ".venv/bin/python"), ["-m", "pds_dpo_workers", "families"], { cwd: ROOT, env: { HF_HUB_OFFLINE: "1" } });
    const workers = JSON.parse(r.stdout) as { kinds: Record<string, string[]>; tiny: string[] };
    // Order too: the first type is each kind's default.
    expect(MODEL_TYPES).toEqual(workers.kinds);
    expect(Object.keys(TINY_MODELS).sort()).toEqual(workers.tiny);
  });
});
