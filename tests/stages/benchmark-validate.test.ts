// `orchestrate validate` with every benchmark type on copies of the fixtures: the four
// together validate; each malformed or missing file, an unknown role, a missing judge and
// the old run-built POPE are exit 2 with one line naming the key, the file, the line or
// index and the field.
import { cpSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli, MINIMAL_EXPERIMENT, ROOT, tempDir, writePrompts } from "../helpers.js";

const BENCHMARKS = `  - {type: pope, name: pope, splits: {random: b/pope/coco_pope_random.json, adversarial: b/pope/coco_pope_adversarial.json}, image_root: b/pope/images}
  - {type: object-halbench, name: objhal, path: b/object-halbench/obj_halbench_300_with_image.jsonl, references: {instances: b/object-halbench/annotations/instances_val2014.json, captions: b/object-halbench/annotations/captions_val2014.json, synonyms: b/object-halbench/synonyms.txt}}
  - {type: amber, name: amber, path: b/amber/query/query_all.json, image_root: b/amber/images, references: {annotations: b/amber/annotations.json, relation: b/amber/relation.json, safe_words: b/amber/safe_words.txt}}
  - {type: mmhal, name: mmhal, path: b/mmhal/response_template.json, image_root: b/mmhal/images, judge: judge}
`;

const experiment = (benchmarks: string) =>
  MINIMAL_EXPERIMENT.replace("stages:\n", "  ev:\n    kind: evaluator\n    model: {source: tiny, name: llava}\n  judge:\n    kind: responder\n    model: {source: tiny, name: llava}\nstages:\n").concat(`  evaluate:\n    evaluator: ev\n    benchmarks:\n${benchmarks.replace(/^ {2}-/gm, "      -")}`);

describe("orchestrate validate: benchmark files", { timeout: 60_000 }, () => {
  let dir: string;
  const validate = async (benchmarks: string, edit: () => void = () => {}) => {
    rmSync(join(dir, "b"), { recursive: true, force: true });
    cpSync(join(ROOT, "configs/benchmarks"), join(dir, "b"), { recursive: true });
    edit();
    writeFileSync(join(dir, "e.yaml"), experiment(benchmarks));
    return cli(["validate", join(dir, "e.yaml")]);
  };
  beforeAll(() => {
    dir = tempDir("pdsdpo-bench-");
    writePrompts(dir, 2);
  });

  it("all four fixture benchmarks validate", async () => {
    const r = await validate(BENCHMARKS);
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it("a malformed file of each benchmark: exit 2 naming the key, the file, the line or index and the field", async () => {
    const r = await validate(BENCHMARKS, () => {
      writeFileSync(join(dir, "b/pope/coco_pope_adversarial.json"), '{"question_id": 1, "image": "fixture_000001.png", "text": "Is there a dog?", "label": "yes"}\n{"question_id": 2, "image": "fixture_000001.png", "text": "Is there a cat?"}\n');
      writeFileSync(join(dir, "b/object-halbench/synonyms.txt"), "\n");
      writeFileSync(join(dir, "b/amber/query/query_all.json"), JSON.stringify([{ id: 1, image: "AMBER_1.png", query: "Describe this image." }, { id: 2, image: 7, query: "Describe this image." }]));
      writeFileSync(join(dir, "b/mmhal/response_template.json"), "[{}]");
    });
    expect(r.exitCode).toBe(2);
    const lines = r.stderr.trim().split("\n");
    const b = join(dir, "b");
    expect(lines).toContain(`stages.evaluate.benchmarks[0].splits.adversarial: ${b}/pope/coco_pope_adversarial.json line 2: missing field 'label' (line 27)`);
    expect(lines).toContain(`stages.evaluate.benchmarks[1].references.synonyms: ${b}/object-halbench/synonyms.txt: no words (one COCO object a line: 'name, synonym, ...') (line 28)`);
    expect(lines).toContain(`stages.evaluate.benchmarks[2].path: ${b}/amber/query/query_all.json[1]: field 'image' must be a non-empty string, not 7 (line 29)`);
    expect(lines).toContain(`stages.evaluate.benchmarks[3].path: ${b}/mmhal/response_template.json[0]: missing field 'question_type' (line 30)`);
  });

  it("a missing file or image, an unknown role, no judge, the run-built POPE of older configs: exit 2, one line each", async () => {
    const r = await validate(
      [
        "  - {type: pope, name: p, path: b/pope/coco_pope_random.json, image_root: b/pope/images}",
        "  - {type: amber, name: amber, path: b/amber/query/query_all.json, image_root: b/amber/images, references: {annotations: b/amber/none.json, captions: x.json}}",
        "  - {type: mmhal, name: mmhal, path: b/mmhal/response_template.json, image_root: b/mmhal/images}",
        "  - {name: pope}",
        "",
      ].join("\n"),
      () => rmSync(join(dir, "b/pope/images/fixture_000002.png")),
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      "stages.evaluate.benchmarks[1].references.captions: amber reads no 'captions' file (roles: annotations, relation, safe_words) (line 28)",
      "stages.evaluate.benchmarks[2].judge: required for mmhal: a responder worker that rates the answers (line 29)",
      "stages.evaluate.benchmarks[3]: POPE needs its question files (splits: {random, popular, adversarial} or path); the benchmark built from the run's own images is now {type: smoke-pope, name: smoke-pope} (line 30)",
    ]);
    const files = await validate(
      [
        "  - {type: pope, name: pope, path: b/pope/coco_pope_random.json, image_root: b/pope/images}",
        "  - {type: amber, name: amber, path: b/amber/query/query_all.json, image_root: b/amber/images, references: {annotations: b/amber/none.json}}",
        "",
      ].join("\n"),
      () => rmSync(join(dir, "b/pope/images/fixture_000002.png")),
    );
    expect(files.exitCode).toBe(2);
    expect(files.stderr.trim().split("\n")).toEqual([
      `stages.evaluate.benchmarks[1].references.annotations: amber annotations file not found: ${join(dir, "b/amber/none.json")} (line 28)`,
      `stages.evaluate.benchmarks[0].image_root: pope: image ${join(dir, "b/pope/images/fixture_000002.png")} not found (and 1 more of the questions' images) (line 27)`,
    ]);
  });

  it("a judge that is no responder, two benchmarks of one name", async () => {
    const r = await validate("  - {type: mmhal, name: m, path: b/mmhal/response_template.json, image_root: b/mmhal/images, judge: ev}\n  - {type: smoke-pope, name: m}\n");
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([
      "stages.evaluate.benchmarks[1].name: 'm' names an earlier benchmark too: names label the results, give each its own (line 28)",
    ]);
    const judge = await validate("  - {type: mmhal, name: m, path: b/mmhal/response_template.json, image_root: b/mmhal/images, judge: ev}\n");
    expect(judge.stderr.trim()).toBe("stages.evaluate.benchmarks[0].judge: worker 'ev' is of kind evaluator; this needs kind responder (line 27)");
  });
});
