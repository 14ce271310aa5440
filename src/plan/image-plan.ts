// Pure: config + prompts -> the image candidates to generate, each with its id and seed.
import type { Prompt } from "../config/prompts.js";
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

export function planImages(stage: ImagesStageConfig, prompts: Prompt[], experimentSeed: number, policy: SeedPolicy): ImageCandidate[] {
  const size = stage.size === undefined ? { width: 0, height: 0 } : typeof stage.size === "number" ? { width: stage.size, height: stage.size } : stage.size;
  const out: ImageCandidate[] = [];
  prompts.forEach((p, promptIndex) => {
    let imageNumber = 0;
    for (const scale of stage.guidance_scales) {
      for (let n = 0; n < stage.images_per_scale; n++, imageNumber++) {
        const id = candidateId(p.id, scale, n);
        out.push({
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
        });
      }
    }
  });
  return out;
}
