/**
 * What the operator's mouse and keyboard do. A click (button 1 going down) on a control
 * triggers it; a few keys stand in for the knobs of a real microscope console. Each change is
 * logged as the control and the fields it changed; key codes themselves never reach the log.
 */
import type { Logger } from '@cloudlet/core';
import { type ControlId, controlAt, type PanelLayout } from './panel';
import type { RfbInputHandler } from './rfb-connection';
import type { MicroscopeSnapshot, MicroscopeState } from './state';

export const STAGE_STEP_UM = 10;

/** X11 keysyms (X11/keysymdef.h). */
export const Keysym = {
  Left: 0xff51,
  Up: 0xff52,
  Right: 0xff53,
  Down: 0xff54,
  PageUp: 0xff55,
  PageDown: 0xff56,
  KpAdd: 0xffab,
  KpSubtract: 0xffad,
  Space: 0x20,
  Plus: 0x2b,
  Equal: 0x3d,
  Minus: 0x2d,
  a: 0x61,
  A: 0x41,
  v: 0x76,
  V: 0x56,
} as const;

/** Performs what pressing `id` does on the real panel. */
export function applyControl(state: MicroscopeState, id: ControlId): void {
  switch (id) {
    case 'stage_x.minus':
      return state.moveStage(-STAGE_STEP_UM, 0);
    case 'stage_x.plus':
      return state.moveStage(STAGE_STEP_UM, 0);
    case 'stage_y.minus':
      return state.moveStage(0, -STAGE_STEP_UM);
    case 'stage_y.plus':
      return state.moveStage(0, STAGE_STEP_UM);
    case 'magnification.minus':
      return state.stepMagnification(-1);
    case 'magnification.plus':
      return state.stepMagnification(1);
    case 'defocus.minus':
      return state.stepDefocus(-1);
    case 'defocus.plus':
      return state.stepDefocus(1);
    case 'dose_rate.minus':
      return state.stepDoseRate(-1);
    case 'dose_rate.plus':
      return state.stepDoseRate(1);
    case 'valves':
      return state.toggleValves();
    case 'acquire':
      return state.toggleAcquire();
  }
}

/** The control a key press stands for, if any. Up on screen is +y on the stage. */
export function controlForKey(keysym: number): ControlId | undefined {
  switch (keysym) {
    case Keysym.Left:
      return 'stage_x.minus';
    case Keysym.Right:
      return 'stage_x.plus';
    case Keysym.Up:
      return 'stage_y.plus';
    case Keysym.Down:
      return 'stage_y.minus';
    case Keysym.PageUp:
      return 'defocus.plus';
    case Keysym.PageDown:
      return 'defocus.minus';
    case Keysym.Plus:
    case Keysym.Equal:
    case Keysym.KpAdd:
      return 'magnification.plus';
    case Keysym.Minus:
    case Keysym.KpSubtract:
      return 'magnification.minus';
    case Keysym.v:
    case Keysym.V:
      return 'valves';
    case Keysym.Space:
    case Keysym.a:
    case Keysym.A:
      return 'acquire';
    default:
      return undefined;
  }
}

export function createInputHandler(deps: { state: MicroscopeState; layout: PanelLayout; log: Logger }): RfbInputHandler {
  const { state, layout, log } = deps;
  const trigger = (client: number, id: ControlId, via: 'pointer' | 'key'): void => {
    const before = state.snapshot();
    applyControl(state, id);
    log.info({ client, control: id, via, changes: changedFields(before, state.snapshot()) }, 'control');
  };
  return {
    pointer(client, x, y, mask, previousMask) {
      if ((mask & 1) === 0 || (previousMask & 1) !== 0) return;
      const id = controlAt(layout, x, y);
      if (id) trigger(client, id, 'pointer');
    },
    key(client, down, keysym) {
      if (!down) return;
      const id = controlForKey(keysym);
      if (id) trigger(client, id, 'key');
    },
  };
}

function changedFields(before: MicroscopeSnapshot, after: MicroscopeSnapshot): Record<string, unknown> {
  const changes: Record<string, unknown> = {};
  for (const key of Object.keys(after) as (keyof MicroscopeSnapshot)[]) {
    if (key !== 'seq' && after[key] !== before[key]) changes[key] = after[key];
  }
  return changes;
}
