import { ADVANCE, drawText, glyph, GLYPH_HEIGHT, GLYPH_WIDTH, hasGlyph, textWidth } from './font';
import { Framebuffer } from './framebuffer';

const INK = 0xffffff;

/** The framebuffer as rows of '#' (ink) and '.' (anything else), for comparing with a design. */
function picture(fb: Framebuffer, x: number, y: number, width: number, height: number): string[] {
  const rows: string[] = [];
  for (let j = y; j < y + height; j++) {
    let row = '';
    for (let i = x; i < x + width; i++) row += fb.pixel(i, j) === INK ? '#' : '.';
    rows.push(row);
  }
  return rows;
}

describe('bitmap font', () => {
  test("draws 'A' pixel for pixel at scale 1", () => {
    const fb = new Framebuffer(8, 8);
    drawText(fb, 'A', 1, 0, 1, INK);
    expect(picture(fb, 0, 0, 7, 8)).toEqual([
      '..###..', //
      '.#...#.',
      '.#...#.',
      '.#####.',
      '.#...#.',
      '.#...#.',
      '.#...#.',
      '.......',
    ]);
  });

  test('scale 2 doubles every pixel', () => {
    const fb = new Framebuffer(12, 16);
    drawText(fb, '1', 0, 0, 2, INK);
    const rows = picture(fb, 0, 0, 10, 14);
    expect(rows[0]).toBe('....##....');
    expect(rows[1]).toBe('....##....');
    expect(rows[2]).toBe('..####....');
    expect(rows[13]).toBe('..######..');
  });

  test('characters advance by six pixels and leave the background alone', () => {
    const fb = new Framebuffer(20, 8);
    fb.fill(fb.bounds, 0x123456);
    const box = drawText(fb, '-+', 0, 0, 1, INK);
    expect(box.width).toBe(textWidth('-+', 1));
    expect(picture(fb, 0, 3, 11, 1)).toEqual(['#####.#####']);
    expect(picture(fb, 6, 0, 5, 1)).toEqual(['.....']);
    expect(fb.pixel(5, 3)).toBe(0x123456);
    expect(ADVANCE).toBe(GLYPH_WIDTH + 1);
  });

  test('descenders hang below the line', () => {
    const fb = new Framebuffer(6, 10);
    drawText(fb, 'p', 0, 0, 1, INK);
    expect(picture(fb, 0, GLYPH_HEIGHT, 5, 2)).toEqual(['#....', '#....']);
  });

  test('lowercase has its own shapes; unknown characters are a visible box', () => {
    expect(glyph('a')).not.toEqual(glyph('A'));
    expect(hasGlyph('\u00b5')).toBe(true);
    expect(hasGlyph('\u2212')).toBe(true);
    expect(hasGlyph('\u00e9')).toBe(false);
    expect(glyph('\u00e9')[0]).toBe(0b11111);
  });

  test('every character the panel writes is in the font', () => {
    const text = 'STAGE X Y MAGNIFICATION DEFOCUS DOSE RATE COLUMN VALVES OPEN CLOSED ACQUIRE STOP EXPOSURES: LIVE VIEW KEYS 0123456789 -+.,:/()µ x e/px/s Arrows PgUp/PgDn Acquiring exposure Ready';
    expect([...text].filter((c) => !hasGlyph(c))).toEqual([]);
  });
});
