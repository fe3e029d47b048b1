import { Writable } from 'node:stream';
import { createLogger } from '@cloudlet/core';
import { controlForKey, createInputHandler, Keysym } from './input';
import { layoutPanel } from './panel';
import { MicroscopeState } from './state';

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

function setup(): { state: MicroscopeState; input: ReturnType<typeof createInputHandler>; lines: Record<string, unknown>[]; layout: ReturnType<typeof layoutPanel> } {
  const { lines, stream } = capture();
  const state = new MicroscopeState();
  const layout = layoutPanel(1024, 768);
  const input = createInputHandler({ state, layout, log: createLogger({ name: 't', destination: stream }) });
  return { state, input, lines, layout };
}

describe('operator input', () => {
  test('a click is button 1 going down on a control; holding or releasing does nothing more', () => {
    const { state, input, layout } = setup();
    const x = layout.valves.x + 5;
    const y = layout.valves.y + 5;
    input.pointer(1, x, y, 1, 0);
    expect(state.snapshot().column_valves_open).toBe(true);
    input.pointer(1, x + 1, y, 1, 1); // drag with the button held
    input.pointer(1, x, y, 0, 1); // release
    input.pointer(1, x, y, 4, 0); // right button
    expect(state.snapshot().column_valves_open).toBe(true);
    input.pointer(1, 0, 0, 1, 0); // not on a control
    expect(state.snapshot().seq).toBe(1);
  });

  test('each control does what its label says', () => {
    const { state, input, layout } = setup();
    const click = (id: string): void => {
      const c = layout.controls.find((k) => k.id === id);
      if (!c) throw new Error(id);
      input.pointer(1, c.rect.x + 1, c.rect.y + 1, 1, 0);
    };
    click('stage_x.plus');
    click('stage_y.minus');
    click('magnification.plus');
    click('defocus.minus');
    click('dose_rate.plus');
    click('valves');
    click('acquire');
    expect(state.snapshot()).toMatchObject({ stage_x_um: 10, stage_y_um: -10, magnification: 96000, defocus_um: -1.6, dose_rate_e_per_px_s: 16, column_valves_open: true, acquiring: true });
    click('acquire');
    expect(state.snapshot().acquiring).toBe(false);
    state.stop();
  });

  test('keys: arrows move the stage, PageUp/PageDown defocus, +/- magnification, v valves, a or space acquire', () => {
    const { state, input } = setup();
    for (const k of [Keysym.Right, Keysym.Right, Keysym.Up, Keysym.PageDown, Keysym.Minus, Keysym.v, Keysym.Space]) {
      input.key(1, true, k);
      input.key(1, false, k);
    }
    expect(state.snapshot()).toMatchObject({ stage_x_um: 20, stage_y_um: 10, defocus_um: -1.6, magnification: 59000, column_valves_open: true, acquiring: true });
    input.key(1, true, Keysym.a);
    expect(state.snapshot().acquiring).toBe(false);
    expect(controlForKey(0x71 /* q */)).toBeUndefined();
  });

  test('a control change is logged with what changed; keystrokes are not', () => {
    const { input, lines } = setup();
    input.key(3, true, 0x71); // q: no control
    input.key(3, true, Keysym.v);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'control', client: 3, control: 'valves', via: 'key', changes: { column_valves_open: true, status: 'Column valves open' } });
    expect(Object.keys(lines[0] ?? {}).sort()).toEqual(['changes', 'client', 'control', 'level', 'msg', 'name', 'service', 'time', 'via']);
  });
});
