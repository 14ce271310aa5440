"""Tiny benchmark fixtures in the official file formats, drawn and written by this code (no
real data): `python -m pds_dpo_workers benchmark-fixtures <out_dir>` writes pope/,
object-halbench/, amber/ and mmhal/ under out_dir (configs/benchmarks/ in the repository;
configs/benchmarks/README.md describes the formats). Images are small PNGs of a shape on a
background; the answers that matter are in the files, chosen so each metric has both
outcomes (yes and no labels, captions with and without hallucinated objects)."""

from __future__ import annotations

import base64
import io
import json
import os

# Object name -> colour (RGB) of the shape drawn for it.
COLOURS = {"dog": (150, 90, 40), "cat": (90, 90, 90), "car": (200, 30, 30), "person": (230, 190, 150), "bench": (120, 70, 20), "tree": (30, 140, 40)}


def png(seed: int, objects: list[str], size: int = 32) -> bytes:
    """A background of the seed's colour with one shape per object: deterministic pixels."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), ((40 * seed) % 256, (90 + 60 * seed) % 256, (200 - 30 * seed) % 256))
    draw = ImageDraw.Draw(img)
    for i, obj in enumerate(objects):
        x = 2 + (i * 11) % (size - 12)
        draw.ellipse([x, 4 + 6 * i, x + 10, 14 + 6 * i], fill=COLOURS.get(obj, (255, 255, 255)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write(path: str, data: bytes | str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# POPE: three images, each asked about one object it shows and one it does not; the splits
# differ in how the absent object is chosen (as POPE's sampling does).
POPE_IMAGES = {"fixture_000001.png": ["dog", "person"], "fixture_000002.png": ["cat"], "fixture_000003.png": ["car", "tree"]}
POPE_ABSENT = {
    "random": ["toaster", "giraffe", "umbrella"],
    "popular": ["chair", "person", "person"],
    "adversarial": ["cat", "dog", "truck"],
}


def pope(out: str) -> None:
    for i, (name, objects) in enumerate(POPE_IMAGES.items(), 1):
        _write(os.path.join(out, "images", name), png(i, objects))
    for split, absent in POPE_ABSENT.items():
        rows, qid = [], 1
        for (name, objects), missing in zip(POPE_IMAGES.items(), absent):
            for obj, label in ((objects[0], "yes"), (missing, "no")):
                rows.append({"question_id": qid, "image": name, "text": f"Is there a {obj} in the image?", "label": label})
                qid += 1
        _write(os.path.join(out, f"coco_pope_{split}.json"), _lines(rows))


# Object-HalBench: COCO-style annotations for three images; the reference captions add
# objects the boxes lack (image 101's bench), as CHAIR's ground truth takes both.
SYNONYMS = [
    ["person", "people", "man", "woman", "boy", "girl", "child", "kid"],
    ["bicycle", "bike", "cycle"],
    ["car", "automobile", "van", "taxi"],
    ["bench", "pew"],
    ["cat", "kitten", "kitty"],
    ["dog", "puppy", "pup", "hound"],
    ["wine glass"],
    ["chair", "seat", "stool"],
    ["dining table", "table", "desk"],
    ["toilet", "urinal"],
]
CATEGORIES = [(1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (15, "bench", "outdoor"), (17, "cat", "animal"), (18, "dog", "animal"), (46, "wine glass", "kitchen"), (62, "chair", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture")]
COCO_IMAGES = {101: ["person", "dog"], 102: ["cat", "chair"], 103: ["car", "bicycle"]}
COCO_CAPTIONS = {
    101: ["A man walks his dog past a wooden bench.", "A person with a puppy in a park."],
    102: ["A kitten sleeps on a seat near a table.", "A cat curled up on a chair."],
    103: ["A red car parked beside a bike.", "A bicycle leans against a car."],
}
CAPTION_PROMPTS = [
    "What is this photo about? Please answer in great detail.",
    "Provide a thorough description of the given image.",
    "Describe the scene in this picture in detail, naming every object you see.",
]


def object_halbench(out: str) -> None:
    cat_id = {name: cid for cid, name, _ in CATEGORIES}
    images, boxes, captions, questions = [], [], [], []
    for k, (image_id, objects) in enumerate(COCO_IMAGES.items()):
        images.append({"id": image_id, "file_name": f"COCO_val2014_{image_id:012d}.png", "width": 32, "height": 32})
        for j, obj in enumerate(objects):
            boxes.append({"id": 1000 + len(boxes), "image_id": image_id, "category_id": cat_id[obj], "bbox": [2.0 + 10 * j, 4.0, 10.0, 10.0], "area": 100.0, "iscrowd": 0, "segmentation": [[2.0, 4.0, 12.0, 4.0, 12.0, 14.0, 2.0, 14.0]]})
        for text in COCO_CAPTIONS[image_id]:
            captions.append({"image_id": image_id, "id": 2000 + len(captions), "caption": text})
        encoded = base64.b64encode(png(10 + k, objects)).decode()
        questions.append({"image_id": image_id, "question": CAPTION_PROMPTS[k], "image": encoded})
    info = {"description": "pds-dpo benchmark fixture (generated, not COCO data)", "version": "1.0", "year": 2014}
    categories = [{"supercategory": sup, "id": cid, "name": name} for cid, name, sup in CATEGORIES]
    _write(os.path.join(out, "obj_halbench_300_with_image.jsonl"), _lines(questions))
    _write(os.path.join(out, "annotations", "instances_val2014.json"), json.dumps({"info": info, "images": images, "licenses": [], "annotations": boxes, "categories": categories}) + "\n")
    _write(os.path.join(out, "annotations", "captions_val2014.json"), json.dumps({"info": info, "images": images, "licenses": [], "annotations": captions}) + "\n")
    _write(os.path.join(out, "synonyms.txt"), "".join(", ".join(line) + "\n" for line in SYNONYMS))


# AMBER: three generative entries and six discriminative ones (each dimension), ids from 1
# in order as AMBER indexes annotations.json by id - 1.
AMBER_IMAGES = {"AMBER_1.png": ["dog", "tree"], "AMBER_2.png": ["person", "bench"], "AMBER_3.png": ["car"]}
AMBER_GENERATIVE = [
    {"truth": ["dog", "grass", "tree"], "hallu": ["cat", "ball", "person"]},
    {"truth": ["person", "bench", "sky"], "hallu": ["dog", "car", "cloud"]},
    {"truth": ["car", "road"], "hallu": ["person", "tree", "bicycle"]},
]
AMBER_DISCRIMINATIVE = [
    ("AMBER_1.png", "Is there a cat in this image?", "discriminative-hallucination", "no"),
    ("AMBER_2.png", "Is there a person in this image?", "discriminative-hallucination", "yes"),
    ("AMBER_1.png", "Is the dog running in this image?", "discriminative-attribute-action", "no"),
    ("AMBER_2.png", "Is there one bench in this image?", "discriminative-attribute-number", "yes"),
    ("AMBER_3.png", "Is the car red in this image?", "discriminative-attribute-state", "yes"),
    ("AMBER_2.png", "Is the person sitting on the bench in this image?", "discriminative-relation", "no"),
]
AMBER_RELATION = {
    "dog": [], "cat": [], "tree": ["forest", "bush", "leaf"], "grass": ["ground", "lawn"],
    "person": ["people", "man", "woman", "boy", "girl"], "bench": ["seat"], "sky": [], "cloud": [],
    "car": ["vehicle", "tire", "wheel"], "road": ["street", "path", "ground"], "ball": [], "bicycle": ["bike", "tire"],
}
AMBER_SAFE_WORDS = ["light", "line", "side", "color", "scene"]


def amber(out: str) -> None:
    for i, (name, objects) in enumerate(AMBER_IMAGES.items(), 1):
        _write(os.path.join(out, "images", name), png(20 + i, objects))
    queries, annotations = [], []
    for name, gen in zip(AMBER_IMAGES, AMBER_GENERATIVE):
        qid = len(queries) + 1
        queries.append({"id": qid, "image": name, "query": "Describe this image."})
        annotations.append({"id": qid, "type": "generative", **gen})
    for name, query, kind, truth in AMBER_DISCRIMINATIVE:
        qid = len(queries) + 1
        queries.append({"id": qid, "image": name, "query": query})
        annotations.append({"id": qid, "type": kind, "truth": truth})
    _write(os.path.join(out, "query", "query_all.json"), json.dumps(queries, indent=4) + "\n")
    _write(os.path.join(out, "annotations.json"), json.dumps(annotations, indent=4) + "\n")
    _write(os.path.join(out, "relation.json"), json.dumps(AMBER_RELATION, indent=4) + "\n")
    _write(os.path.join(out, "safe_words.txt"), "".join(w + "\n" for w in AMBER_SAFE_WORDS))


# MMHal-Bench: three template records; the image file is image_src's last path segment.
MMHAL = [
    ("attribute", "outdoor", ["Dog", "Tree"], "What colour is the dog in the picture?", "The dog in the image is brown."),
    ("counting", "indoor", ["Cat"], "How many cats are in this image?", "There is one cat in the image."),
    ("adversarial", "outdoor", ["Car"], "What is the driver of the car wearing?", "There is no driver visible; only a parked red car."),
]


def mmhal(out: str) -> None:
    records = []
    for i, (qtype, topic, content, question, answer) in enumerate(MMHAL, 1):
        name = f"mmhal_fixture_{i}.png"
        _write(os.path.join(out, "images", name), png(30 + i, [c.lower() for c in content]))
        records.append({
            "question_type": qtype, "question_topic": topic, "image_id": f"fixture{i:04d}",
            "image_src": f"https://fixture.invalid/mmhal/{name}", "image_content": content,
            "question": question, "gt_answer": answer, "model_answer": "",
        })
    _write(os.path.join(out, "response_template.json"), json.dumps(records, indent=4) + "\n")


GENERATORS = {"pope": pope, "object-halbench": object_halbench, "amber": amber, "mmhal": mmhal}


def write_all(out_dir: str) -> None:
    for name, generate in GENERATORS.items():
        generate(os.path.join(out_dir, name))
