import { globToRegExp, matcher } from './glob';

describe('include patterns', () => {
  test.each([
    ['**/*.mrc', 'a.mrc', true],
    ['**/*.mrc', 'grid1/sq2/a.mrc', true],
    ['**/*.mrc', 'a.mrc.part', false],
    ['*.mrc', 'sub/a.mrc', false],
    ['**/*.{tif,tiff}', 'x/y.tiff', true],
    ['**/*.{tif,tiff}', 'x/y.tifff', false],
    ['Images-Disc?/**/*.mrc', 'Images-Disc1/a/b.mrc', true],
    ['**/*.mrc', 'odd name (1)$.mrc', true],
    ['**/*.mrc', 'new\nline.mrc', true],
  ])('%s ~ %s -> %s', (pattern, p, expected) => {
    expect(globToRegExp(pattern).test(p)).toBe(expected);
  });

  test('any of several patterns', () => {
    const m = matcher(['**/*.mrc', '**/*.tiff']);
    expect([m('a.mrc'), m('b/c.tiff'), m('d.jpg')]).toEqual([true, true, false]);
  });
});
