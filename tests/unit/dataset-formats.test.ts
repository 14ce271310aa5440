import { describe, expect, it } from "vitest";
import { categoryOf, promptsFromReleaseFiles, promptsJsonl } from "../../src/dataset/prompts-import.js";
import { DATASET_FORMATS, llamaFactoryDatasetInfo, readPairs, unwritable, writePairs, type PreferencePair } from "../../src/dataset/formats.js";
import { parsePrompts } from "../../src/config/prompts.js";

const PAIRS: PreferencePair[] = [
  { id: "art-001", images: ["images/art-001.png"], question: "Describe the mood of this painting.", chosen: "Stormy and tense: dark blues, thick strokes.", rejected: "A cat." },
  { id: "transport-919", images: ["images/transport-919.png"], question: 'What does the sign say?\nAnswer with "quotes".', chosen: "It says \"STOP\" — in white.", rejected: "I cannot see any image." },
];

const lines = (text: string) => text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

describe("preference dataset formats", () => {
  for (const format of DATASET_FORMATS) {
    it(`round-trips pairs through ${format}`, () => {
      const text = writePairs(format, PAIRS);
      const back = readPairs(format, text);
      expect(back.issues).toEqual([]);
      expect(back.pairs).toEqual(PAIRS);
      // and again: writing what was read gives the same bytes
      expect(writePairs(format, back.pairs)).toBe(text);
    });
  }

  it("writes each format in the shape its trainer documents", () => {
    const p = [PAIRS[0]!];
    expect(lines(writePairs("trl", p))[0]).toEqual({
      id: "art-001",
      images: ["images/art-001.png"],
      prompt: [{ role: "user", content: "Describe the mood of this painting." }],
      chosen: [{ role: "assistant", content: "Stormy and tense: dark blues, thick strokes." }],
      rejected: [{ role: "assistant", content: "A cat." }],
    });
    expect(JSON.parse(writePairs("llava", p))).toEqual([
      {
        id: "art-001",
        image: "images/art-001.png",
        conversations: [
          { from: "human", value: "<image>\nDescribe the mood of this painting." },
          { from: "gpt", value: "Stormy and tense: dark blues, thick strokes." },
        ],
        rejected_conversations: [
          { from: "human", value: "<image>\nDescribe the mood of this painting." },
          { from: "gpt", value: "A cat." },
        ],
      },
    ]);
    expect(JSON.parse(writePairs("llama-factory", p))).toEqual([
      {
        id: "art-001",
        conversations: [{ from: "human", value: "<image>Describe the mood of this painting." }],
        chosen: { from: "gpt", value: "Stormy and tense: dark blues, thick strokes." },
        rejected: { from: "gpt", value: "A cat." },
        images: ["images/art-001.png"],
      },
    ]);
    expect(lines(writePairs("ms-swift", p))[0]).toEqual({
      id: "art-001",
      messages: [
        { role: "user", content: "<image>Describe the mood of this painting." },
        { role: "assistant", content: "Stormy and tense: dark blues, thick strokes." },
      ],
      rejected_response: "A cat.",
      images: ["images/art-001.png"],
    });
    expect(llamaFactoryDatasetInfo("pdsdpo", "pdsdpo.json")).toEqual({
      pdsdpo: { file_name: "pdsdpo.json", formatting: "sharegpt", ranking: true, columns: { messages: "conversations", chosen: "chosen", rejected: "rejected", images: "images" } },
    });
  });

  it("puts one <image> token a image in the user turn of llama-factory and ms-swift", () => {
    const two: PreferencePair = { ...PAIRS[0]!, images: ["a.png", "b.png"] };
    expect(JSON.parse(writePairs("llama-factory", [two]))[0].conversations[0].value).toBe("<image><image>Describe the mood of this painting.");
    expect(readPairs("ms-swift", writePairs("ms-swift", [two])).pairs).toEqual([two]);
    expect(unwritable("llava", [two], ["line 1"])).toEqual(["line 1: images: 2 images; the llava format holds one"]);
    expect(() => writePairs("llava", [two])).toThrow(/holds one/);
  });

  it("reads a run's pairs.jsonl (metadata and all: carried as it is) and the release's llava.json", () => {
    const run = JSON.stringify({ id: "art-001", images: ["images/art-001.png"], prompt: [{ role: "user", content: "What is this?" }], chosen: [{ role: "assistant", content: "A lighthouse." }], rejected: [{ role: "assistant", content: "A cat." }], metadata: { category: "art", margin: 1 } });
    expect(readPairs("trl", `${run}\n`).pairs).toEqual([{ id: "art-001", images: ["images/art-001.png"], question: "What is this?", chosen: "A lighthouse.", rejected: "A cat.", metadata: { category: "art", margin: 1 } }]);
    expect(readPairs("trl", `${run.replace('"metadata":{"category":"art","margin":1}', '"metadata":"art"')}\n`).issues).toEqual(["line 1: metadata: expected an object, got a string"]);
    const release = [{ id: "art-001", image: "images/art-001.jpg", conversations: [{ from: "human", value: "<image> What is this?" }, { from: "gpt", value: "A lighthouse." }], rejected_conversations: [{ from: "human", value: "<image> What is this?" }, { from: "gpt", value: "A cat." }] }];
    expect(readPairs("llava", JSON.stringify(release)).pairs).toEqual([{ id: "art-001", images: ["images/art-001.jpg"], question: "What is this?", chosen: "A lighthouse.", rejected: "A cat." }]);
  });

  it("reads TRL's standard format (plain strings), typed content parts and rows without ids", () => {
    const text = [
      JSON.stringify({ images: ["x.png"], prompt: "<image>What is this?", chosen: "A dog.", rejected: "A cat." }),
      JSON.stringify({ images: ["y.png"], prompt: [{ role: "user", content: [{ type: "image" }, { type: "text", text: "How many?" }] }], chosen: [{ role: "assistant", content: [{ type: "text", text: "Two." }] }], rejected: "Three." }),
    ].join("\n");
    const r = readPairs("trl", text);
    expect(r.issues).toEqual([]);
    expect(r.pairs).toEqual([
      { id: "line-1", images: ["x.png"], question: "What is this?", chosen: "A dog.", rejected: "A cat." },
      { id: "line-2", images: ["y.png"], question: "How many?", chosen: "Two.", rejected: "Three." },
    ]);
    expect(r.where).toEqual(["line 1", "line 2"]);
  });

  it("reads ms-swift's rejected_messages form", () => {
    const row = { messages: [{ role: "user", content: "<image>Q?" }, { role: "assistant", content: "Yes." }], rejected_messages: [{ role: "user", content: "<image>Q?" }, { role: "assistant", content: "No." }], images: ["q.png"], rejected_images: ["q.png"] };
    expect(readPairs("ms-swift", JSON.stringify(row)).pairs).toEqual([{ id: "line-1", images: ["q.png"], question: "Q?", chosen: "Yes.", rejected: "No." }]);
  });

  it("names each bad row by line (JSON lines) or index (a JSON list) and why", () => {
    const good = JSON.parse(writePairs("trl", [PAIRS[0]!]).trim()) as Record<string, unknown>;
    const trl = [
      JSON.stringify(good),
      JSON.stringify({ ...good, id: "b", chosen: undefined }),
      "{not json",
      JSON.stringify({ ...good, id: "c", images: [] }),
      JSON.stringify({ ...good, id: "d", images: undefined, rejected: [{ role: "user", content: "x" }] }),
      JSON.stringify(good),
      JSON.stringify({ ...good, id: "e", chosen: [{ role: "assistant", content: "  " }] }),
      "",
      "[1]",
    ].join("\n");
    const r = readPairs("trl", trl);
    expect(r.pairs.map((p) => p.id)).toEqual(["art-001"]);
    expect(r.issues).toEqual([
      "line 3: not valid JSON",
      "line 2: chosen: missing",
      "line 4: images: empty: a pair needs an image",
      "line 5: images: missing",
      'line 5: rejected[0].role: expected assistant, got "user"',
      'line 6: id: "art-001" repeats line 1',
      "line 7: chosen: blank",
      "line 9: (row): expected an object, got a list",
    ]);

    const llava = JSON.parse(writePairs("llava", PAIRS)) as Record<string, unknown>[];
    const bad = [
      llava[0],
      { ...llava[1], conversations: [{ from: "human", value: "<image>\nQ" }, { from: "human", value: "A" }] },
      { ...llava[1], id: "x", image: undefined, rejected_conversations: [{ from: "human", value: "<image>\nOther" }, { from: "gpt", value: "R" }] },
      "a string",
    ];
    expect(readPairs("llava", JSON.stringify(bad)).issues).toEqual([
      'item 1: conversations[1].from: expected gpt, got "human"',
      "item 2: image: missing",
      "item 2: rejected_conversations[0].value: differs from conversations[0].value: both answer one question",
      "item 3: (row): expected an object, got a string",
    ]);

    const lf = JSON.parse(writePairs("llama-factory", PAIRS)) as Record<string, unknown>[];
    expect(readPairs("llama-factory", JSON.stringify([{ ...lf[0], chosen: "just text" }, { ...lf[1], conversations: [] }])).issues).toEqual([
      "item 0: chosen: expected an object, got a string",
      "item 1: conversations: expected one human turn, got 0 turns",
    ]);

    const swift = lines(writePairs("ms-swift", PAIRS));
    expect(readPairs("ms-swift", [{ ...swift[0], rejected_response: 3 }, { ...swift[1], messages: [{ role: "user", content: "Q" }] }].map((o) => JSON.stringify(o)).join("\n")).issues).toEqual([
      "line 1: rejected_response: expected a string, got a number",
      "line 2: messages: expected 2 messages (user, assistant), got 1",
    ]);
  });

  it("says what is wrong with a file that is not a dataset at all", () => {
    expect(readPairs("trl", "name: t\nseed: 1\n").issues).toEqual(["not JSON lines or a JSON list: line 1 is not a JSON object"]);
    expect(readPairs("llava", "[{").issues[0]).toMatch(/^not valid JSON/);
    expect(readPairs("ms-swift", "\n\n").issues).toEqual(["empty: no pairs"]);
    expect(readPairs("llava", "[]").issues).toEqual(["empty: no pairs"]);
  });
});

describe("prompts from the authors' release files", () => {
  const t2i = "An oil painting of a lighthouse in a storm\nA red double-decker bus on a wet street\n";
  const inst = "<image> Describe the mood of this painting.\n<image> What city could this be?\n";

  it("aligns the files line by line, with ids from a third file, and derives the category", () => {
    const r = promptsFromReleaseFiles(t2i, inst, "art-7\ntransport-919\n");
    expect(r.issues).toEqual([]);
    expect(r.prompts).toEqual([
      { id: "art-7", category: "art", t2i_prompt: "An oil painting of a lighthouse in a storm", instruction: "<image> Describe the mood of this painting." },
      { id: "transport-919", category: "transport", t2i_prompt: "A red double-decker bus on a wet street", instruction: "<image> What city could this be?" },
    ]);
    // The project's own prompts reader takes what the import writes.
    const parsed = parsePrompts(promptsJsonl(r.prompts), "stages.images.prompts", "prompts.jsonl");
    expect(parsed.issues).toEqual([]);
    expect(parsed.prompts).toEqual(r.prompts);
  });

  it("takes ids from a leading tab column, and names prompts after their line without ids", () => {
    const withIds = promptsFromReleaseFiles("scifi-1\tA starship\r\nhome-22\tA kitchen\r\n", "<image> What is it?\r\nWhat room? \r\n");
    expect(withIds.issues).toEqual([]);
    expect(withIds.prompts.map((p) => [p.id, p.category, p.instruction])).toEqual([
      ["scifi-1", "scifi", "<image> What is it?"],
      ["home-22", "home", "<image> What room?"],
    ]);
    expect(promptsFromReleaseFiles(t2i, inst).prompts.map((p) => [p.id, p.category])).toEqual([
      ["line-1", "uncategorized"],
      ["line-2", "uncategorized"],
    ]);
    expect(categoryOf("culinary-0042")).toBe("culinary");
    expect(categoryOf("my_topic_12")).toBe("my_topic");
    expect(categoryOf("12")).toBeUndefined();
  });

  it("reports misaligned files as one issue, and bad lines by number", () => {
    expect(promptsFromReleaseFiles(t2i, "<image> Only one\n", "a-1\nb-2\nc-3\n")).toEqual({
      prompts: [],
      issues: ["the files are not aligned line by line: the text-to-image file has 2, the instruction file 1, the ids file 3 lines"],
    });
    const r = promptsFromReleaseFiles("A\n\nC\nD\n", "<image> a\n<image> b\n<image> c\n<image> d\n", "art-1\nart-2\n99\nart-1\n");
    expect(r.prompts.map((p) => p.id)).toEqual(["art-1"]);
    expect(r.issues).toEqual([
      expect.stringMatching(/^line 2: t2i_prompt: /),
      'line 3: id "99": no category prefix (like transport-919)',
      'line 4: id "art-1" repeats line 1',
    ]);
    expect(promptsFromReleaseFiles("art-1\tA\n", "art-2\t<image> a\n").issues).toEqual([`line 1: id: the text-to-image file's id column says "art-1", the instruction file's id column "art-2"`]);
  });
});
