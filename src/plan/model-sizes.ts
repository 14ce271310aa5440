// What the memory plan knows of a model without loading it: its parameter count and, for
// language models, the shape that sizes their KV cache. Read from the weights on disk when
// they are there (workers/model-files.ts), else from this table of the paper's models (their
// model cards and configs), else unknown.

export interface ModelSize {
  /** Parameters (all components of a pipeline together). */
  params: number;
  /** Language model shape: the KV cache of generation (layers, KV heads, head dim) and training activations (hidden). */
  lm?: { layers: number; hidden: number; kvHeads: number; headDim: number };
  /** Image tokens of one prompt at most (LLaVA-1.5: 576; LLaVA-1.6 anyres: up to 5 tiles of 576 and their row ends). */
  imageTokens?: number;
  /** Where the numbers come from. */
  basis: "weights" | "known" | "tiny" | "unknown";
}

const LLAMA_7B = { layers: 32, hidden: 4096, kvHeads: 32, headDim: 128 };
const LLAMA_13B = { layers: 40, hidden: 5120, kvHeads: 40, headDim: 128 };
const GQA_8B = { layers: 32, hidden: 4096, kvHeads: 8, headDim: 128 };
const ANYRES = 2928;

/** The paper's models (and their close siblings) by hub id. */
export const KNOWN_MODELS: Record<string, Omit<ModelSize, "basis">> = {
  // MMDiT 2.03B + T5-XXL encoder 4.76B + CLIP-L 0.12B + CLIP-G 0.69B + VAE 0.08B.
  "stabilityai/stable-diffusion-3-medium-diffusers": { params: 7.69e9 },
  "stabilityai/stable-diffusion-xl-base-1.0": { params: 3.47e9 },
  "stable-diffusion-v1-5/stable-diffusion-v1-5": { params: 1.07e9 },
  // BLIP ViT-L + BERT-base with cross-attention + MLP head (ImageReward.pt: 1.8 GB in fp32).
  "THUDM/ImageReward": { params: 0.45e9 },
  "llava-hf/llava-v1.6-mistral-7b-hf": { params: 7.57e9, lm: GQA_8B, imageTokens: ANYRES },
  "llava-hf/llava-v1.6-vicuna-7b-hf": { params: 7.06e9, lm: LLAMA_7B, imageTokens: ANYRES },
  "llava-hf/llava-v1.6-vicuna-13b-hf": { params: 13.35e9, lm: LLAMA_13B, imageTokens: ANYRES },
  "llava-hf/llava-1.5-7b-hf": { params: 7.06e9, lm: LLAMA_7B, imageTokens: 576 },
  "llava-hf/llava-1.5-13b-hf": { params: 13.35e9, lm: LLAMA_13B, imageTokens: 576 },
  "RLHFlow/ArmoRM-Llama3-8B-v0.1": { params: 7.51e9, lm: GQA_8B },
};
