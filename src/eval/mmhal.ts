// Pure: MMHal-Bench judging. The rubric prompt and the rating parse are MMHal-Bench's own
// GPT-4 scoring script's (eval_gpt4.py of Shengcao1006/MMHal-Bench; the copy read here is
// Eval/eval_gpt_mmhal.py of llava-rlhf/LLaVA-RLHF at 830a083, by the same authors, since the
// MMHal-Bench repository could not be fetched): the template text verbatim, one judge prompt
// per answer from the image contents, question, standard answer and the model's answer; a
// rating is the one "rating: N" (N in 0..6) in the judge's reply, and a reply with none or
// several counts as 0, as the script counts it (and is counted here as unparseable too).

/** A row of MMHal-Bench's response_template.json. */
export interface MmhalRow {
  question_type: string;
  question_topic: string;
  image_id: string;
  image_src: string;
  image_content: string[];
  question: string;
  gt_answer: string;
  model_answer: string;
}

const PARTS = [
  "Please act as an impartial and objective judge and evaluate the quality of the response provided by a Large Multimodal Model (LMM) to the user question. Your evaluation should be mainly based on whether the response is informative, and whether the response contains any hallucination. Hallucination, in this context, refers to a situation where the LMM generates a response that includes information not present or implied in the image or previous conversation. A hallucination could be a false claim about an object, action, emotion, or any other detail that is not grounded in the image.\n\nFor clarity, consider these examples:\n\n### Example 1:\n- Image Contents: Lynx, Cat\n- Question: How many cats can you see in this image?\n- Standard Human-Generated Answer: There are two cats visible in the image.\n- LMM Response to Evaluate: There is one cat in the image.\n- Analysis: The LMM's response is false because it claims there is only one cat in the image, when in fact there are two.\n- Hallucination: Yes.\n\n### Example 2:\n- Image Contents: Tree, Plant, Panda, Animal\n- Question: What can you see from this photo?\n- Standard Human-Generated Answer: In this photo we can see branches. We can see a panda on a branch. The background is blurry.\n- LMM Response to Evaluate: In the photo, I can see a large black and white panda sitting on a tree branch. The image captures the panda's unique appearance and its natural habitat, showcasing the beauty and rarity of these animals.\n- Analysis: The LMM's response is not false because it does not make any false claims about the image contents. For example, it does not claim that the panda is eating bamboo.\n- Hallucination: No.\n\n### Example 3:\n- Image Contents: Fashion accessory, Mammal, Dog, Umbrella\n- Question: Describe this image in details.\n- Standard Human-Generated Answer: In this picture I can see a dog laying under a yellow umbrella on a beach, and there is a rope on the right side. In the background I can see few persons talking or lying. At the top of the image, I can see the blue and clear sky.\n- LMM Response to Evaluate: The image features a brown dog laying on the sand at the beach, underneath a yellow umbrella. The dog is positioned near the water, and there are people in the background. The beach is sandy, and the sun is shining, creating a pleasant atmosphere. The dog is enjoying the shade provided by the umbrella, which is a common way to protect pets from the sun's harmful rays. The presence of people in the background suggests that the beach is a popular spot for leisure activities, such as sunbathing, swimming, and relaxing.\n- Analysis: The LMM's response is false because it claims that the dog is positioned near the water, but there is no water in the image.\n- Hallucination: Yes.\n\n### Example 4:\n- Image Contents: Clothing, Luggage and bags, Man, Building, Woman, Person\n- Question: Where is this photo taken?\n- Standard Human-Generated Answer: From the slogan \"Welcome to Houston, Texas\", we can infer that this photo is taken at an airport in Houston, Texas.\n- LMM Response to Evaluate: This photo is taken at an airport, specifically at the entrance of a terminal. However, the specific location of this airport cannot be determined from the image.\n- Analysis: Although the LMM's response does not explicitly mention the location \"Houston, Texas\" and does not perfectly answer the question, it makes no false claims about the image contents. Therefore, this response is not considered hallucination. It is OK if the LMM fails to directly answer the question, expresses uncertainty, or cannot include all the objects or details in the human-generated answer.\n- Hallucination: No.\n\n### Example 5:\n- Image Contents: Tree, Tower\n- Question: What environmental concerns are involved in this photo?\n- Standard Human-Generated Answer: This photo shows a smokestack emitting smoke. It may cause severe air pollution which threatens human health.\n- LMM Response to Evaluate: In the photo, there are several environmental concerns related to the smokestack emitting smoke. The smoke from the smokestack is a byproduct of industrial processes, which can contribute to air pollution, climate change, and negative impacts on human health. The smoke contains harmful pollutants, such as particulate matter, sulfur dioxide, nitrogen oxides, and carbon monoxide, which can lead to respiratory problems, heart disease, and other health issues. Additionally, the smoke contributes to the greenhouse effect, which can lead to global warming and climate change. The smokestack's emissions also affect the environment, as they can harm wildlife, vegetation, and ecosystems. Therefore, it is essential to address these environmental concerns by implementing measures to reduce emissions and promote sustainable practices in industrial processes.\n- Analysis: Although the LMM's response is significantly longer than the standard human-generated answer, it does not contain any false claims about the image contents. Instead, it provides additional general information about the environmental concerns, which can be inferred from the smoke emission. Such detailed analysis or reasoning should be considered as a positive aspect, as long as it contains no false claims.\n- Hallucination: No.\n\nWith these examples in mind, please help me evaluate whether the response by the LMM is informative, and whether hallucination exists in it, based on the comparison between the LMM's response and the factual information provided in the image contents, question, and the standard human-generated answer below.\n\nPlease note that the standard human-generated answer may only contain factual information but may not give a detailed analysis. Also, the standard human-generated answer may not be completely comprehensive in describing all the objects and their attributes, so please be a bit more cautious during evalutation. LMM's detailed analysis or reasoning should be encouraged.\n\nTo evaluate the LMM responses, first, begin your evaluation by providing a short explanation. Second, after providing your explanation, you must rate the response by choosing from the following options:\n- Rating: 6, very informative with good analysis or reasoning, no hallucination\n- Rating: 5, very informative, no hallucination\n- Rating: 4, somewhat informative, no hallucination\n- Rating: 3, not informative, no hallucination\n- Rating: 2, very informative, with hallucination\n- Rating: 1, somewhat informative, with hallucination\n- Rating: 0, not informative, with hallucination\n\n### Image Contents\n",
  "\n\n### Question\n",
  "\n\n### Standard Human-Generated Answer\n",
  "\n\n### LMM Response to Evaluate\n",
  "\n",
];

/** The judge prompt of one answer: eval_gpt4.py's template.format(image contents, question, gt answer, model answer). */
export function judgePrompt(row: Pick<MmhalRow, "image_content" | "question" | "gt_answer">, answer: string): string {
  const fills = [row.image_content.join(", "), row.question, row.gt_answer, answer];
  return PARTS.map((p, i) => p + (fills[i] ?? "")).join("");
}

/** The judge's rating: the one "rating: N" in its reply (case-insensitive), or null (none, or several different). */
export function parseRating(reply: string): number | null {
  const lower = reply.toLowerCase();
  const found = [0, 1, 2, 3, 4, 5, 6].filter((s) => lower.includes(`rating: ${s}`));
  return found.length === 1 ? found[0]! : null;
}

/**
 * The metrics of eval_gpt4.py over ratings in row order: score (mean rating, 0-6),
 * hallucination_rate (share rated below 3), a mean score per question type
 * (score_<type>, by each row's question_type rather than the script's index mod 8, so a
 * subset still groups right), and how many replies had no single rating (rated 0).
 */
export function mmhalMetrics(rows: Pick<MmhalRow, "question_type">[], ratings: (number | null)[]): Record<string, number> {
  if (rows.length !== ratings.length) throw new RangeError("one rating per row");
  const scores = ratings.map((r) => r ?? 0);
  const n = scores.length;
  const out: Record<string, number> = {
    questions: n,
    score: n ? scores.reduce((a, b) => a + b, 0) / n : 0,
    hallucination_rate: n ? scores.filter((s) => s < 3).length / n : 0,
    unparseable: ratings.filter((r) => r === null).length,
  };
  const byType = new Map<string, number[]>();
  rows.forEach((r, i) => (byType.get(r.question_type) ?? byType.set(r.question_type, []).get(r.question_type)!).push(scores[i]!));
  for (const [type, s] of [...byType].sort(([a], [b]) => (a < b ? -1 : 1))) out[`score_${type}`] = s.reduce((a, b) => a + b, 0) / s.length;
  return out;
}

/** The file MMHal-Bench's scoring script reads (--response): the template rows with each model_answer filled in. */
export function responsesFile(rows: MmhalRow[], answers: string[]): string {
  return `${JSON.stringify(rows.map((r, i) => ({ ...r, model_answer: answers[i] ?? "" })), null, 2)}\n`;
}
