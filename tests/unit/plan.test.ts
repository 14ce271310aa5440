import { describe, expect, it } from "vitest";
import { ImagesStageSchema } from "../../src/config/schema.js";
import { planImages } from "../../src/plan/image-plan.js";
import { derivedSeed, pdsDpoSeed } from "../../src/plan/seeds.js";
import { selectBest, type CandidateOutcome } from "../../src/plan/select.js";

const stage = ImagesStageSchema.parse({ prompts: "p.jsonl", generator: "g", scorer: "s", guidance_scales: [5, 7, 9, 11], steps: 2, size: 64 });
const prompts = ["a-1", "b-1", "c-1"].map((id) => ({ id, category: id[0]!, t2i_prompt: `prompt ${id}`, instruction: "q" }));

describe("seeds", () => {
  it("derives a stable 48-bit seed from the experiment seed and the item id", () => {
    const s = derivedSeed(1234, "a-1.gs5.n0");
    expect(s).toBe(derivedSeed(1234, "a-1.gs5.n0"));
    expect(s).not.toBe(derivedSeed(1235, "a-1.gs5.n0"));
    expect(s).not.toBe(derivedSeed(1234, "a-1.gs7.n0"));
    expect(Number.isSafeInteger(s) && s >= 0 && s < 2 ** 48).toBe(true);
  });

  it("reproduces the paper's prompt_index*1000 + image_number", () => {
    expect(pdsDpoSeed(0, 0)).toBe(0);
    expect(pdsDpoSeed(3, 2)).toBe(3002);
  });
});

describe("planImages", () => {
  it("makes one candidate per prompt, scale and image, with stable ids", () => {
    const plan = planImages(stage, prompts, 1, "derived");
    expect(plan).toHaveLength(12);
    expect(plan.slice(0, 4).map((c) => c.id)).toEqual(["a-1.gs5.n0", "a-1.gs7.n0", "a-1.gs9.n0", "a-1.gs11.n0"]);
    expect(plan[5]).toMatchObject({ promptId: "b-1", promptIndex: 1, imageNumber: 1, guidanceScale: 7, width: 64, height: 64 });
  });

  it("gives an item the same seed whatever its position", () => {
    const forward = planImages(stage, prompts, 1, "derived");
    const reversed = planImages(stage, [...prompts].reverse(), 1, "derived");
    const seedOf = (plan: typeof forward, id: string) => plan.find((c) => c.id === id)!.seed;
    for (const c of forward) expect(seedOf(reversed, c.id)).toBe(c.seed);
  });

  it("uses prompt_index*1000 + image_number under seed_policy pds-dpo", () => {
    const two = ImagesStageSchema.parse({ ...stage, images_per_scale: 2 });
    const plan = planImages(two, prompts, 1, "pds-dpo");
    expect(plan.filter((c) => c.promptId === "b-1").map((c) => c.seed)).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]);
  });

  it("asks for the model's default size (0x0 on the wire, resolved by the generator: tests/integration/paper-twin) when none is given; seeds on the CPU unless told", () => {
    const noSize = ImagesStageSchema.parse({ ...stage, size: undefined });
    expect(planImages(noSize, prompts, 1, "derived")[0]).toMatchObject({ width: 0, height: 0, generatorDevice: "cpu" });
    const onModel = ImagesStageSchema.parse({ ...stage, generator_device: "model" });
    expect(planImages(onModel, prompts, 1, "derived")[0]).toMatchObject({ width: 64, height: 64, generatorDevice: "model" });
  });
});

describe("selectBest", () => {
  const o = (id: string, promptId: string, imageNumber: number, score?: number, extra: Partial<CandidateOutcome> = {}): CandidateOutcome => ({
    id,
    promptId,
    imageNumber,
    score,
    defects: [],
    ...extra,
  });

  it("keeps the highest score per prompt", () => {
    expect(selectBest([o("a0", "a", 0, 1), o("a1", "a", 1, 3), o("b0", "b", 0, 2)])).toEqual([
      { promptId: "a", kept: "a1", score: 3 },
      { promptId: "b", kept: "b0", score: 2 },
    ]);
  });

  it("breaks ties by the earlier image", () => {
    expect(selectBest([o("a1", "a", 1, 2), o("a0", "a", 0, 2)])[0]).toMatchObject({ kept: "a0" });
  });

  it("never keeps a defective, failed or unscored image", () => {
    const out = selectBest([
      o("a0", "a", 0, 9, { defects: ["nan_pixels"] }),
      o("a1", "a", 1, 8, { error: "boom" }),
      o("a2", "a", 2, undefined),
      o("a3", "a", 3, 1),
      o("b0", "b", 0, 5, { defects: ["all_black"] }),
    ]);
    expect(out).toEqual([
      { promptId: "a", kept: "a3", score: 1 },
      { promptId: "b", kept: null, reason: "no_valid_image" },
    ]);
  });

  it("drops a prompt whose best score is under min_score", () => {
    expect(selectBest([o("a0", "a", 0, 0.5)], 1)).toEqual([{ promptId: "a", kept: null, reason: "below_min_score", bestScore: 0.5 }]);
    expect(selectBest([o("a0", "a", 0, 1)], 1)[0]).toMatchObject({ kept: "a0" });
  });

  it("handles no candidates", () => {
    expect(selectBest([])).toEqual([]);
  });
});
