/**
 * A small bitmap font drawn for this panel: 5x7 cells on a 6-pixel advance, scaled by whole
 * numbers. Letters, digits and the punctuation the panel needs. Each glyph is seven rows top
 * to bottom ('#' lit, '.' dark), or nine for the few with descenders (g j p q y µ), which hang
 * below the line. Anything else is drawn as a hollow box, so a missing glyph is visible.
 */
import type { Framebuffer, Rgb } from './framebuffer';
import { type Rect, rect } from './region';

export const GLYPH_WIDTH = 5;
/** Cap height: text is placed and centred by these rows. */
export const GLYPH_HEIGHT = 7;
/** Rows below the line that descenders may use. */
export const DESCENT = 2;
export const ADVANCE = GLYPH_WIDTH + 1;

const DESIGNS: Record<string, string> = {
  ' ': '.....|.....|.....|.....|.....|.....|.....',
  '0': '.###.|#...#|#..##|#.#.#|##..#|#...#|.###.',
  '1': '..#..|.##..|..#..|..#..|..#..|..#..|.###.',
  '2': '.###.|#...#|....#|...#.|..#..|.#...|#####',
  '3': '####.|....#|....#|.###.|....#|....#|####.',
  '4': '...#.|..##.|.#.#.|#..#.|#####|...#.|...#.',
  '5': '#####|#....|####.|....#|....#|#...#|.###.',
  '6': '..##.|.#...|#....|####.|#...#|#...#|.###.',
  '7': '#####|....#|...#.|..#..|.#...|.#...|.#...',
  '8': '.###.|#...#|#...#|.###.|#...#|#...#|.###.',
  '9': '.###.|#...#|#...#|.####|....#|...#.|.##..',
  A: '.###.|#...#|#...#|#####|#...#|#...#|#...#',
  B: '####.|#...#|#...#|####.|#...#|#...#|####.',
  C: '.###.|#...#|#....|#....|#....|#...#|.###.',
  D: '###..|#..#.|#...#|#...#|#...#|#..#.|###..',
  E: '#####|#....|#....|####.|#....|#....|#####',
  F: '#####|#....|#....|####.|#....|#....|#....',
  G: '.###.|#...#|#....|#.###|#...#|#...#|.####',
  H: '#...#|#...#|#...#|#####|#...#|#...#|#...#',
  I: '.###.|..#..|..#..|..#..|..#..|..#..|.###.',
  J: '..###|...#.|...#.|...#.|...#.|#..#.|.##..',
  K: '#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#',
  L: '#....|#....|#....|#....|#....|#....|#####',
  M: '#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#',
  N: '#...#|#...#|##..#|#.#.#|#..##|#...#|#...#',
  O: '.###.|#...#|#...#|#...#|#...#|#...#|.###.',
  P: '####.|#...#|#...#|####.|#....|#....|#....',
  Q: '.###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#',
  R: '####.|#...#|#...#|####.|#.#..|#..#.|#...#',
  S: '.####|#....|#....|.###.|....#|....#|####.',
  T: '#####|..#..|..#..|..#..|..#..|..#..|..#..',
  U: '#...#|#...#|#...#|#...#|#...#|#...#|.###.',
  V: '#...#|#...#|#...#|.#.#.|.#.#.|.#.#.|..#..',
  W: '#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.',
  X: '#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#',
  Y: '#...#|#...#|.#.#.|..#..|..#..|..#..|..#..',
  Z: '#####|....#|...#.|..#..|.#...|#....|#####',
  a: '.....|.....|.###.|....#|.####|#...#|.####',
  b: '#....|#....|####.|#...#|#...#|#...#|####.',
  c: '.....|.....|.###.|#....|#....|#...#|.###.',
  d: '....#|....#|.####|#...#|#...#|#...#|.####',
  e: '.....|.....|.###.|#...#|#####|#....|.###.',
  f: '..##.|.#..#|.#...|###..|.#...|.#...|.#...',
  g: '.....|.....|.####|#...#|#...#|#...#|.####|....#|.###.',
  h: '#....|#....|#.##.|##..#|#...#|#...#|#...#',
  i: '..#..|.....|.##..|..#..|..#..|..#..|.###.',
  j: '...#.|.....|..##.|...#.|...#.|...#.|...#.|#..#.|.##..',
  k: '#....|#....|#..#.|#.#..|##...|#.#..|#..#.',
  l: '.##..|..#..|..#..|..#..|..#..|..#..|.###.',
  m: '.....|.....|##.#.|#.#.#|#.#.#|#.#.#|#.#.#',
  n: '.....|.....|#.##.|##..#|#...#|#...#|#...#',
  o: '.....|.....|.###.|#...#|#...#|#...#|.###.',
  p: '.....|.....|####.|#...#|#...#|#...#|####.|#....|#....',
  q: '.....|.....|.####|#...#|#...#|#...#|.####|....#|....#',
  r: '.....|.....|#.##.|##..#|#....|#....|#....',
  s: '.....|.....|.####|#....|.###.|....#|####.',
  t: '.#...|.#...|###..|.#...|.#...|.#..#|..##.',
  u: '.....|.....|#...#|#...#|#...#|#..##|.##.#',
  v: '.....|.....|#...#|#...#|#...#|.#.#.|..#..',
  w: '.....|.....|#...#|#...#|#.#.#|#.#.#|.#.#.',
  x: '.....|.....|#...#|.#.#.|..#..|.#.#.|#...#',
  y: '.....|.....|#...#|#...#|#...#|#...#|.####|....#|.###.',
  z: '.....|.....|#####|...#.|..#..|.#...|#####',
  '.': '.....|.....|.....|.....|.....|.##..|.##..',
  ',': '.....|.....|.....|.....|.##..|..#..|.#...',
  ':': '.....|.##..|.##..|.....|.##..|.##..|.....',
  ';': '.....|.##..|.##..|.....|.##..|..#..|.#...',
  '-': '.....|.....|.....|#####|.....|.....|.....',
  '+': '.....|..#..|..#..|#####|..#..|..#..|.....',
  '=': '.....|.....|#####|.....|#####|.....|.....',
  '/': '....#|....#|...#.|..#..|.#...|#....|#....',
  '(': '...#.|..#..|.#...|.#...|.#...|..#..|...#.',
  ')': '.#...|..#..|...#.|...#.|...#.|..#..|.#...',
  '[': '.###.|.#...|.#...|.#...|.#...|.#...|.###.',
  ']': '.###.|...#.|...#.|...#.|...#.|...#.|.###.',
  '<': '...#.|..#..|.#...|#....|.#...|..#..|...#.',
  '>': '.#...|..#..|...#.|....#|...#.|..#..|.#...',
  '%': '##..#|##..#|...#.|..#..|.#...|#..##|#..##',
  '!': '..#..|..#..|..#..|..#..|..#..|.....|..#..',
  '?': '.###.|#...#|....#|...#.|..#..|.....|..#..',
  "'": '..#..|..#..|.#...|.....|.....|.....|.....',
  '"': '.#.#.|.#.#.|.....|.....|.....|.....|.....',
  '_': '.....|.....|.....|.....|.....|.....|#####',
  '#': '.#.#.|.#.#.|#####|.#.#.|#####|.#.#.|.#.#.',
  '*': '.....|#.#.#|.###.|#####|.###.|#.#.#|.....',
  '\u00b5': '.....|.....|#...#|#...#|#...#|#..##|###.#|#....|#....',
  '\u00d7': '.....|#...#|.#.#.|..#..|.#.#.|#...#|.....',
};

const MISSING = '#####|#...#|#...#|#...#|#...#|#...#|#####';

/** Each glyph as row masks (seven, or nine with descenders); bit 4 is the leftmost column. */
const GLYPHS = new Map<string, readonly number[]>(Object.entries(DESIGNS).map(([ch, design]) => [ch, parseDesign(ch, design)]));
const MISSING_GLYPH = parseDesign('missing', MISSING);

function parseDesign(ch: string, design: string): readonly number[] {
  const rows = design.split('|');
  if ((rows.length !== GLYPH_HEIGHT && rows.length !== GLYPH_HEIGHT + DESCENT) || rows.some((r) => r.length !== GLYPH_WIDTH || /[^#.]/.test(r))) {
    throw new Error(`glyph ${JSON.stringify(ch)} is not ${GLYPH_WIDTH} columns by ${GLYPH_HEIGHT} (or ${GLYPH_HEIGHT + DESCENT}) rows of '#' and '.'`);
  }
  return Object.freeze(rows.map((row) => [...row].reduce((mask, c) => (mask << 1) | (c === '#' ? 1 : 0), 0)));
}

/** The row masks for `ch` (U+2212 minus drawn as '-'); a box for characters the font lacks. */
export function glyph(ch: string): readonly number[] {
  return GLYPHS.get(ch === '\u2212' ? '-' : ch) ?? GLYPHS.get(ch.toUpperCase()) ?? MISSING_GLYPH;
}

export function hasGlyph(ch: string): boolean {
  return glyph(ch) !== MISSING_GLYPH;
}

export function textWidth(text: string, scale = 1): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * ADVANCE - 1) * scale;
}

export function textHeight(scale = 1): number {
  return GLYPH_HEIGHT * scale;
}

/** Draws lit pixels only (the background shows through) and returns the box the text spans, descenders included. */
export function drawText(fb: Framebuffer, text: string, x: number, y: number, scale: number, colour: Rgb): Rect {
  let cx = x;
  for (const ch of text) {
    const rows = glyph(ch);
    rows.forEach((mask, row) => {
      for (let col = 0; col < GLYPH_WIDTH; col++) {
        if ((mask >> (GLYPH_WIDTH - 1 - col)) & 1) fb.fill(rect(cx + col * scale, y + row * scale, scale, scale), colour);
      }
    });
    cx += ADVANCE * scale;
  }
  return rect(x, y, textWidth(text, scale), (GLYPH_HEIGHT + DESCENT) * scale);
}

/** Draws `text` centred in `box`. */
export function drawTextCentred(fb: Framebuffer, text: string, box: Rect, scale: number, colour: Rgb): Rect {
  const x = box.x + Math.floor((box.width - textWidth(text, scale)) / 2);
  const y = box.y + Math.floor((box.height - textHeight(scale)) / 2);
  return drawText(fb, text, x, y, scale, colour);
}
