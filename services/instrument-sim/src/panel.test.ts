import { COLOURS, type ControlId, ControlPanel, controlAt, layoutPanel, readoutText } from './panel';
import { area, bounds, intersect } from './region';
import { MicroscopeState } from './state';

function centre(r: { x: number; y: number; width: number; height: number }): [number, number] {
  return [r.x + Math.floor(r.width / 2), r.y + Math.floor(r.height / 2)];
}

describe('panel layout and hit-test', () => {
  test.each([
    [1024, 768],
    [800, 600],
    [1920, 1080],
  ])('at %ix%i every control is on screen, apart from the others, and found by its centre', (width, height) => {
    const layout = layoutPanel(width, height);
    expect(layout.controls).toHaveLength(12);
    const ids = new Set<ControlId>();
    for (const c of layout.controls) {
      ids.add(c.id);
      expect(c.rect.x + c.rect.width).toBeLessThanOrEqual(width);
      expect(c.rect.y + c.rect.height).toBeLessThanOrEqual(layout.status.y);
      expect(controlAt(layout, ...centre(c.rect))).toBe(c.id);
      for (const other of layout.controls) if (other !== c) expect(area(intersect(c.rect, other.rect))).toBe(0);
    }
    expect(ids.size).toBe(12);
    expect(area(intersect(bounds(layout.acquire, layout.valves), layout.liveView))).toBe(0);
  });

  test('edges are exact: the first and last pixel of a button hit, the next one does not', () => {
    const layout = layoutPanel(1024, 768);
    const v = layout.valves;
    expect(controlAt(layout, v.x, v.y)).toBe('valves');
    expect(controlAt(layout, v.x + v.width - 1, v.y + v.height - 1)).toBe('valves');
    expect(controlAt(layout, v.x + v.width, v.y)).toBeUndefined();
    expect(controlAt(layout, v.x, v.y - 1)).toBeUndefined();
    expect(controlAt(layout, ...centre(layout.liveView))).toBeUndefined();
    expect(controlAt(layout, 0, 0)).toBeUndefined();
  });

  test('a screen too small for the panel is refused', () => {
    expect(() => layoutPanel(640, 480)).toThrow(/at least 800x600/);
  });
});

describe('panel rendering', () => {
  test('the first render draws everything; the valves toggle is red when closed, green when open', () => {
    const state = new MicroscopeState();
    const panel = new ControlPanel({ width: 1024, height: 768, title: 'Test TEM' });
    expect(panel.render(state.snapshot())).toEqual([{ x: 0, y: 0, width: 1024, height: 768 }]);
    const v = panel.layout.valves;
    // A corner pixel: inside the button, outside its text.
    expect(panel.framebuffer.pixel(v.x + 2, v.y + 2)).toBe(COLOURS.valvesClosed);
    expect(panel.framebuffer.pixel(panel.layout.acquire.x + 2, panel.layout.acquire.y + 2)).toBe(COLOURS.acquire);
    expect(panel.framebuffer.pixel(5, 5)).toBe(COLOURS.titleBar);

    state.setValves(true);
    const dirty = panel.render(state.snapshot());
    expect(dirty).toContainEqual(v);
    expect(panel.framebuffer.pixel(v.x + 2, v.y + 2)).toBe(COLOURS.valvesOpen);
  });

  test('later renders redraw and report only what changed', () => {
    const state = new MicroscopeState();
    const panel = new ControlPanel({ width: 1024, height: 768, title: 'Test TEM' });
    panel.render(state.snapshot());
    expect(panel.render(state.snapshot())).toEqual([]);

    state.setDoseRate(20);
    const l = panel.layout;
    expect(panel.render(state.snapshot())).toEqual([l.readouts.dose_rate.value, l.liveView]);

    const before = Buffer.from(panel.framebuffer.data);
    state.stepDefocus(-1);
    const dirty = panel.render(state.snapshot());
    expect(dirty).toEqual([l.readouts.defocus.value, l.liveView]);
    // Nothing outside the reported rectangles changed.
    const fb = panel.framebuffer;
    const changedOutside: [number, number][] = [];
    for (let y = 0; y < fb.height; y++) {
      for (let x = 0; x < fb.width; x++) {
        const i = (y * fb.width + x) * 4;
        if (fb.data.readUInt32BE(i) === before.readUInt32BE(i)) continue;
        if (!dirty.some((r) => x >= r.x && y >= r.y && x < r.x + r.width && y < r.y + r.height)) changedOutside.push([x, y]);
      }
    }
    expect(changedOutside).toEqual([]);
  });

  test('the live view moves with the stage and goes dark without beam', () => {
    const state = new MicroscopeState();
    state.setValves(true);
    state.setMagnification(1500);
    const panel = new ControlPanel({ width: 1024, height: 768, title: 'Test TEM' });
    const lv = panel.layout.liveView;
    const row = (): Buffer => Buffer.from(panel.framebuffer.data.subarray((lv.y + 100) * 1024 * 4 + lv.x * 4, (lv.y + 100) * 1024 * 4 + (lv.x + lv.width) * 4));
    const mean = (): number => {
      const r = row();
      let sum = 0;
      for (let i = 0; i < r.length; i += 4) sum += r[i] as number;
      return sum / (r.length / 4);
    };
    panel.render(state.snapshot());
    const first = row();
    const bright = mean();

    // One stage step at 1500x is a shift of 300 pixels: the row now shows what was further right.
    state.moveStage(10, 0);
    panel.render(state.snapshot());
    expect(row().equals(first)).toBe(false);
    const umPerPx = 50 / 1500;
    const shift = Math.round(10 / umPerPx);
    expect(row().subarray(0, 100 * 4).equals(first.subarray(shift * 4, (shift + 100) * 4))).toBe(true);

    state.setValves(false);
    panel.render(state.snapshot());
    expect(mean()).toBeLessThan(bright / 3);
  });

  test('readouts show units', () => {
    const s = new MicroscopeState().snapshot();
    expect(readoutText('stage_x', s)).toBe('0.0 \u00b5m');
    expect(readoutText('magnification', s)).toBe('75000x');
    expect(readoutText('defocus', s)).toBe('-1.5 \u00b5m');
    expect(readoutText('dose_rate', s)).toBe('15 e/px/s');
  });
});
