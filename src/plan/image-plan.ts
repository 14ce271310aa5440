// Pure: config + prompts -> the image candidates to generate, each with its id and seed.
import type { PromptList } from "../config/prompts.js";
import type { ImagesStageConfig } from "../config/schema.js";
import { derivedSeed, pdsDpoSeed, type SeedPolicy } from "./seeds.js";

export interface ImageCandidate {
  /** Stable id from the inputs: `<prompt id>.gs<scale>.n<k>`. */
  id: string;
  promptId: string;
  promptIndex: number;
  category: string;
  prompt: string;
  /** The prompt's instruction (for the responders), carried for the records. */
  instruction: string;
  negativePrompt: string;
  guidanceScale: number;
  /** k-th image of its prompt, over scales then images per scale. */
  imageNumber: number;
  steps: number;
  /** Both 0 when the config sets no size: the generator uses the model's default (SD3: 1024) and the PNG carries the size made. */
  width: number;
  height: number;
  seed: number;
  /** Where the seeded generator lives: "cpu" or "model" (the model's device). */
  generatorDevice: "cpu" | "model";
}

export function candidateId(promptId: string, guidanceScale: number, n: number): string {
  return `${promptId}.gs${guidanceScale}.n${n}`;
}

/** The plan without its list: any candidate from its position, so a run of a million needs none in memory. */
export interface ImagePlan {
  /** Candidates per prompt (guidance scales x images per scale). */
  perPrompt: number;
  total: number;
  /** The k-th candidate of the i-th prompt. */
  candidate(promptIndex: number, k: number): ImageCandidate;
  /** Candidates in plan order from plan position `from`. */
  from(from: number): Generator<ImageCandidate>;
}

export function imagePlan(stage: ImagesStageConfig, prompts: PromptList, experimentSeed: number, policy: SeedPolicy): ImagePlan {
  const size = stage.size === undefined ? { width: 0, height: 0 } : typeof stage.size === "number" ? { width: stage.size, height: stage.size } : stage.size;
  const perPrompt = stage.guidance_scales.length * stage.images_per_scale;
  const candidate = (promptIndex: number, imageNumber: number): ImageCandidate => {
    const p = prompts.at(promptIndex)!;
    const scale = stage.guidance_scales[Math.floor(imageNumber / stage.images_per_scale)]!;
    const id = candidateId(p.id, scale, imageNumber % stage.images_per_scale);
    return {
      id,
      promptId: p.id,
      promptIndex,
      category: p.category,
      prompt: p.t2i_prompt,
      instruction: p.instruction,
      negativePrompt: stage.negative_prompt,
      guidanceScale: scale,
      imageNumber,
      steps: stage.steps,
      ...size,
      seed: policy === "pds-dpo" ? pdsDpoSeed(promptIndex, imageNumber) : derivedSeed(experimentSeed, id),
      generatorDevice: stage.generator_device,
    };
  };
  const total = prompts.length * perPrompt;
  return {
    perPrompt,
    total,
    candidate,
    *from(from) {
      for (let i = from; i < total; i++) yield candidate(Math.floor(i / perPrompt), i % perPrompt);
    },
  };
}

export function planImages(stage: ImagesStageConfig, prompts: PromptList, experimentSeed: number, policy: SeedPolicy): ImageCandidate[] {
  return [...imagePlan(stage, prompts, experimentSeed, policy).from(0)];
}
