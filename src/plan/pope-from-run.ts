// Pure: the smoke-pope benchmark: a small POPE-format question file from a run's own
// generated images that the trainer never saw (candidates the image scorer did not keep),
// for runs (like the tiny default) without benchmark files. A smoke check that the
// evaluation path works end to end, never a hallucination measurement. Each image gets one
// question about an object of its own category (label yes) and one about the next
// category's (label no).

export const CATEGORY_OBJECTS: Record<string, string> = {
  art: "painting",
  industrial: "machine",
  nature: "tree",
  transport: "vehicle",
  urban: "building",
  school: "desk",
  holiday: "decoration",
  weather: "cloud",
  daily: "cup",
  culinary: "plate",
  home: "sofa",
  scifi: "robot",
  animal: "animal",
  plant: "flower",
  fashion: "coat",
};

export interface PopeRow {
  question_id: string;
  image: string;
  text: string;
  label: "yes" | "no";
}

const article = (noun: string) => (/^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`);

export function popeFromImages(images: { id: string; category: string; path: string }[]): PopeRow[] {
  const categories = Object.keys(CATEGORY_OBJECTS).sort();
  const rows: PopeRow[] = [];
  for (const img of images) {
    const own = CATEGORY_OBJECTS[img.category] ?? img.category;
    const other = CATEGORY_OBJECTS[categories[(categories.indexOf(img.category) + 1) % categories.length]!]!;
    rows.push({ question_id: `${img.id}.yes`, image: img.path, text: `Is there ${article(own)} in the image?`, label: "yes" });
    rows.push({ question_id: `${img.id}.no`, image: img.path, text: `Is there ${article(other)} in the image?`, label: "no" });
  }
  return rows;
}
