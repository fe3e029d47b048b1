import { area, DirtyRegion, rect, subtract } from './region';

describe('rectangles', () => {
  test('subtracting the middle leaves four bands that cover the rest exactly', () => {
    const parts = subtract(rect(0, 0, 10, 10), rect(3, 3, 4, 4));
    expect(parts).toHaveLength(4);
    expect(parts.reduce((sum, p) => sum + area(p), 0)).toBe(100 - 16);
    expect(subtract(rect(0, 0, 10, 10), rect(20, 20, 5, 5))).toEqual([rect(0, 0, 10, 10)]);
    expect(subtract(rect(2, 2, 3, 3), rect(0, 0, 10, 10))).toEqual([]);
  });
});

describe('dirty region', () => {
  test('take returns what lies in the window and keeps the rest', () => {
    const d = new DirtyRegion();
    d.add(rect(0, 0, 100, 10));
    expect(d.take(rect(0, 0, 50, 50))).toEqual([rect(0, 0, 50, 10)]);
    expect(d.take(rect(0, 0, 200, 200))).toEqual([rect(50, 0, 50, 10)]);
    expect(d.size).toBe(0);
  });

  test('contained rectangles are not stored twice', () => {
    const d = new DirtyRegion();
    d.add(rect(10, 10, 5, 5));
    d.add(rect(0, 0, 100, 100));
    d.add(rect(20, 20, 5, 5));
    expect(d.size).toBe(1);
  });

  test('never holds more than its limit: many changes collapse into their bounding box', () => {
    const d = new DirtyRegion(4);
    for (let i = 0; i < 1000; i++) d.add(rect((i * 7) % 500, (i * 13) % 300, 3, 3));
    expect(d.size).toBeLessThanOrEqual(4);
    const taken = d.take(rect(0, 0, 1000, 1000));
    expect(taken.length).toBeLessThanOrEqual(4);
  });
});
