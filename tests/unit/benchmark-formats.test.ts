// The benchmark file checks of `validate` (src/eval/formats.ts), one reader a benchmark type:
// the project's fixtures (configs/benchmarks/, the official formats) pass and list their
// images; a malformed file is one line naming the file, the line (JSON lines) or the index
// (JSON lists) and the field.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkAmber, checkMmhal, checkObjectHalbench, checkPope, mmhalImageName, type FileData } from "../../src/eval/formats.js";
import { ROOT } from "../helpers.js";

const B = join(ROOT, "configs", "benchmarks");
const fixture = (rel: string): FileData => ({ file: rel, data: readFileSync(join(B, rel)) });
const text = (file: string, t: string): FileData => ({ file, data: Buffer.from(t) });
const json = (file: string, v: unknown): FileData => text(file, JSON.stringify(v));

describe("POPE question files", () => {
  it("the fixtures pass and name their images", () => {
    for (const split of ["random", "popular", "adversarial"]) {
      const r = checkPope(fixture(`pope/coco_pope_${split}.json`));
      expect(r.issues).toEqual([]);
      expect(r.images.length).toBeGreaterThan(0);
      expect(r.images[0]).toEqual({ ref: "fixture_000001.png", path: "fixture_000001.png" });
    }
  });

  it("names the line and the field of each problem", () => {
    const f = text("q.json", ['{"question_id": 1, "image": "a.jpg", "text": "Is there a dog?", "label": "yes"}', "", '{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "maybe"}', '{"image": "", "text": "x", "label": "no"}', "not json", "[1]"].join("\n"));
    // Lines that are no JSON object first, then the fields of the others.
    expect(checkPope(f).issues).toEqual([
      expect.stringMatching(/^q\.json line 5: not JSON \(/),
      "q.json line 6: not a JSON object",
      "q.json line 3: question id 1 repeats q.json line 1's",
      'q.json line 3: field \'label\' must be "yes" or "no", not "maybe"',
      "q.json line 4: missing field 'question_id'",
      "q.json line 4: field 'image' must be a non-empty string, not \"\"",
    ]);
    expect(checkPope(text("e.json", "\n")).issues).toEqual(["e.json: no questions"]);
    expect(checkPope({ file: "b.json", data: Buffer.from([0xff, 0xfe, 0x00]) }).issues).toEqual(["b.json: not UTF-8 text"]);
  });
});

describe("Object-HalBench files", () => {
  const refs = () => ({ instances: fixture("object-halbench/annotations/instances_val2014.json"), captions: fixture("object-halbench/annotations/captions_val2014.json"), synonyms: fixture("object-halbench/synonyms.txt") });

  it("the fixture passes; its images are base64 inside the question file", () => {
    const r = checkObjectHalbench(fixture("object-halbench/obj_halbench_300_with_image.jsonl"), refs());
    expect(r.issues).toEqual([]);
    expect(r.images.length).toBeGreaterThan(0);
    const first = r.images[0]!;
    expect("bytes" in first && first.bytes.subarray(1, 4).toString()).toBe("PNG");
  });

  it("names the question line, the COCO file's list index and the field", () => {
    const q = text("obj.jsonl", ['{"image_id": 101, "question": "Describe.", "image": "@@@"}', '{"image_id": 999, "question": "Describe.", "image_path": "x.png"}', '{"image_id": "abc", "question": ""}'].join("\n"));
    const instances = json("instances.json", { categories: [{ id: 1, name: "dog" }, { id: 2, name: "unicorn" }], images: [{ id: 101 }], annotations: [{ image_id: 101, category_id: 3 }, { image_id: 101 }] });
    const r = checkObjectHalbench(q, { instances, captions: json("captions.json", { annotations: [{ image_id: 101, caption: 7 }] }), synonyms: text("syn.txt", "dog, puppy\ncat, kitten\n") });
    expect(r.issues).toEqual([
      "obj.jsonl line 1: field 'image' is not base64",
      "obj.jsonl line 3: field 'image_id' must be a COCO image id (an integer), not \"abc\"",
      "obj.jsonl line 3: field 'question' must be a non-empty string, not \"\"",
      "obj.jsonl line 3: missing field 'image' (the image as base64) or 'image_path'",
      "instances.json categories[1]: category 'unicorn' is on no line of syn.txt",
      "instances.json annotations[0]: field 'category_id' 3 is no category of the file",
      "instances.json annotations[1]: missing field 'category_id'",
      "obj.jsonl line 2: field 'image_id' 999 is no image of instances.json",
      "captions.json annotations[0]: field 'caption' must be a string, not 7",
    ]);
    expect(checkObjectHalbench(q, { ...refs(), instances: json("i.json", [1]) }).issues).toContain("i.json: not a JSON object (COCO instances_*.json)");
  });
});

describe("AMBER files", () => {
  const refs = () => ({ annotations: fixture("amber/annotations.json"), relation: fixture("amber/relation.json"), safe_words: fixture("amber/safe_words.txt") });

  it("the fixture passes and names its images", () => {
    const r = checkAmber(fixture("amber/query/query_all.json"), refs());
    expect(r.issues).toEqual([]);
    expect(r.images.map((i) => i.ref)).toContain("AMBER_1.png");
  });

  it("names the index and field; generative queries need the relation and safe words files", () => {
    const annotations = json("ann.json", [{ id: 1, type: "generative", truth: ["dog"], hallu: ["dragon"] }, { id: 2, type: "discriminative-hallucination", truth: "perhaps" }, { id: 3, type: "odd", truth: "yes" }]);
    const q = json("query.json", [{ id: 1, image: "AMBER_1.jpg", query: "Describe." }, { id: 9, image: "AMBER_9.jpg", query: "Is there a cat?" }, { id: 2, query: "" }]);
    expect(checkAmber(q, { annotations, relation: json("rel.json", { dog: ["puppy"], cat: "kitten" }) }).issues).toEqual([
      'ann.json[1]: field \'truth\' must be "yes" or "no", not "perhaps"',
      expect.stringMatching(/^ann\.json\[2\]: field 'type' must be one of generative, .*, not "odd"$/),
      "query.json[1]: field 'id' 9 has no entry in ann.json",
      "query.json[2]: missing field 'image'",
      "query.json[2]: field 'query' must be a non-empty string, not \"\"",
      "query.json: generative queries need the safe words file (references.safe_words)",
      'rel.json: field \'cat\' must be a list of strings, not "kitten"',
      "ann.json id 1: field 'hallu' word 'dragon' is no key of rel.json",
    ]);
    expect(checkAmber(json("q.json", { id: 1 }), refs()).issues).toEqual(["q.json: not a JSON list"]);
  });
});

describe("MMHal-Bench template", () => {
  it("the fixture passes; each image is named by image_src's last path segment", () => {
    const r = checkMmhal(fixture("mmhal/response_template.json"));
    expect(r.issues).toEqual([]);
    expect(r.images[0]).toEqual({ ref: "mmhal_fixture_1.png", path: "mmhal_fixture_1.png" });
    expect(mmhalImageName("https://c1.staticflickr.com/9/8/x_o.jpg?a=1")).toBe("x_o.jpg");
  });

  it("names the index and field", () => {
    const ok = { question_type: "attribute", question_topic: "outdoor", image_id: "i", image_src: "https://x/a.jpg", image_content: ["Dog"], question: "What?", gt_answer: "A dog.", model_answer: "" };
    const { question_type: _, ...noType } = ok;
    expect(checkMmhal(json("t.json", [ok, noType, { ...ok, image_content: "Dog" }, { ...ok, image_src: "https://x/" }])).issues).toEqual([
      "t.json[1]: missing field 'question_type'",
      "t.json[2]: field 'image_content' must be a list of strings, not \"Dog\"",
      "t.json[3]: field 'image_src' names no file: \"https://x/\"",
    ]);
  });
});
