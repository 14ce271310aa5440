import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { IntegrityError } from "../../src/errors.js";
import { decodePng, pixelDistance } from "../../src/store/png.js";

// Written by Pillow (optimize=True picks the Sub and Paeth row filters), and its pixels.
const PIL_PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAUAAAAGCAIAAACEmcMcAAAATklEQVR42gXBMRLAIAgEwCRDAWgFh5Wc/v+V2X2/51HcWVvzjGrRdT3aip70PDJBjXYcwzZQNLYverSBHpRRtKTXsWzPlpHXsgda0RP8ATrTBs0rKA3IAAAAAElFTkSuQmCC";
const PIL_PIXELS =
  "0200000a142016293c1e3c5b2951780a162014283d1f3e5b295179336498162a3e1e3c5b29527a3266963c7ab61e3c5a2852793364973c7ab5468cd42951783265973d7ab6468dd350a0f13464983d78b5488ed350a2f05cb60f";

function chunk(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, Buffer.from(type, "latin1"), body, Buffer.alloc(4)]);
}

/** A gray PNG whose rows use the given filters (0 None, 2 Up, 3 Average). */
function grayPng(rows: number[][], filters: number[]): Buffer {
  const w = rows[0]!.length;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(rows.length, 4);
  ihdr[8] = 8;
  ihdr[9] = 0;
  const raw = rows.flatMap((row, y) => [
    filters[y]!,
    ...row.map((v, x) => {
      const up = y > 0 ? rows[y - 1]![x]! : 0;
      const left = x > 0 ? row[x - 1]! : 0;
      const pred = filters[y] === 2 ? up : filters[y] === 3 ? (left + up) >> 1 : 0;
      return (v - pred) & 0xff;
    }),
  ]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.from(raw))), chunk("IEND", Buffer.alloc(0))]);
}

describe("decodePng", () => {
  it("decodes a Pillow PNG with Sub and Paeth rows", () => {
    const p = decodePng(Buffer.from(PIL_PNG, "base64"));
    expect({ width: p.width, height: p.height, channels: p.channels }).toEqual({ width: 5, height: 6, channels: 3 });
    expect(Buffer.from(p.data).toString("hex")).toBe(PIL_PIXELS);
  });

  it("decodes None, Up and Average rows", () => {
    const rows = [
      [10, 200, 30],
      [12, 180, 255],
      [0, 7, 99],
    ];
    expect(Array.from(decodePng(grayPng(rows, [0, 2, 3])).data)).toEqual(rows.flat());
  });

  it("refuses what is not an 8-bit PNG", () => {
    expect(() => decodePng(Buffer.from("GIF89a not a png"))).toThrow(IntegrityError);
    const sixteen = grayPng([[1]], [0]);
    sixteen[8 + 8 + 8] = 16;
    expect(() => decodePng(sixteen)).toThrow(/unsupported PNG \(bit depth 16/);
  });
});

describe("pixelDistance", () => {
  it("gives the largest channel difference and the PSNR", () => {
    const a = { width: 2, height: 1, channels: 1, data: Uint8Array.from([10, 20]) };
    expect(pixelDistance(a, a)).toEqual({ maxDiff: 0, psnr: Number.POSITIVE_INFINITY });
    const d = pixelDistance(a, { ...a, data: Uint8Array.from([12, 20]) })!;
    expect(d.maxDiff).toBe(2);
    expect(d.psnr).toBeCloseTo(10 * Math.log10((255 * 255) / 2), 6);
    expect(pixelDistance(a, { ...a, width: 1, height: 2 })).toBeNull();
  });
});
