/**
 * The simulated microscope: what the control panel shows and the API publishes. Every method
 * validates its input (a non-number is a caller's bug and throws), clamps to the instrument's
 * limits (saying so in `status`, as a real panel would), and emits 'change' with a fresh
 * snapshot whenever anything visible changed.
 */
import { EventEmitter } from 'node:events';

export const STAGE_LIMIT_UM = 1000;
/** The magnifications the column offers; values in between snap to the nearest one. */
export const MAGNIFICATIONS: readonly number[] = Object.freeze([
  1500, 2250, 3600, 4800, 6500, 8700, 11500, 14500, 18000, 22500, 29000, 36000, 47000, 59000, 75000, 96000, 105000, 130000, 165000, 215000,
]);
export const DEFOCUS_MIN_UM = -5.0;
export const DEFOCUS_MAX_UM = -0.5;
export const DEFOCUS_STEP_UM = 0.1;
export const DOSE_RATE_MIN = 1;
export const DOSE_RATE_MAX = 50;
export const DEFAULT_EXPOSURE_INTERVAL_MS = 11_000;

export interface MicroscopeSnapshot {
  /** Increases by one with every change, so followers can tell they missed none. */
  readonly seq: number;
  readonly stage_x_um: number;
  readonly stage_y_um: number;
  readonly magnification: number;
  readonly defocus_um: number;
  readonly dose_rate_e_per_px_s: number;
  readonly column_valves_open: boolean;
  readonly acquiring: boolean;
  readonly exposures: number;
  readonly status: string;
}

export const INITIAL_SNAPSHOT: MicroscopeSnapshot = Object.freeze({
  seq: 0,
  stage_x_um: 0,
  stage_y_um: 0,
  magnification: 75000,
  defocus_um: -1.5,
  dose_rate_e_per_px_s: 15,
  column_valves_open: false,
  acquiring: false,
  exposures: 0,
  status: 'Ready',
});

export interface MicroscopeStateOptions {
  exposureIntervalMs?: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Patch = Partial<Omit<MicroscopeSnapshot, 'seq' | 'status'>>;

export class MicroscopeState extends EventEmitter<{ change: [MicroscopeSnapshot] }> {
  private current: MicroscopeSnapshot = INITIAL_SNAPSHOT;
  private timer: NodeJS.Timeout | undefined;
  private readonly exposureIntervalMs: number;

  constructor(options: MicroscopeStateOptions = {}) {
    super();
    this.exposureIntervalMs = options.exposureIntervalMs ?? DEFAULT_EXPOSURE_INTERVAL_MS;
    if (!(this.exposureIntervalMs > 0)) throw new RangeError('the exposure interval must be positive');
  }

  snapshot(): MicroscopeSnapshot {
    return this.current;
  }

  setStage(xUm: number, yUm: number): void {
    const x = clamp(round(finite(xUm, 'stage x'), 2), -STAGE_LIMIT_UM, STAGE_LIMIT_UM);
    const y = clamp(round(finite(yUm, 'stage y'), 2), -STAGE_LIMIT_UM, STAGE_LIMIT_UM);
    const clamped = x !== round(xUm, 2) || y !== round(yUm, 2);
    this.apply({ stage_x_um: x, stage_y_um: y }, clamped ? `Stage at its limit (\u00b1${STAGE_LIMIT_UM} um)` : undefined);
  }

  moveStage(dxUm: number, dyUm: number): void {
    this.setStage(this.current.stage_x_um + finite(dxUm, 'stage dx'), this.current.stage_y_um + finite(dyUm, 'stage dy'));
  }

  /** Snaps to the nearest magnification the column offers. */
  setMagnification(value: number): void {
    finite(value, 'magnification');
    let best = 0;
    MAGNIFICATIONS.forEach((m, i) => {
      if (Math.abs(m - value) < Math.abs((MAGNIFICATIONS[best] as number) - value)) best = i;
    });
    this.stepMagnification(best - MAGNIFICATIONS.indexOf(this.current.magnification));
  }

  stepMagnification(steps: number): void {
    const from = MAGNIFICATIONS.indexOf(this.current.magnification);
    const wanted = from + Math.trunc(finite(steps, 'magnification steps'));
    const index = clamp(wanted, 0, MAGNIFICATIONS.length - 1);
    const value = MAGNIFICATIONS[index] as number;
    this.apply({ magnification: value }, index !== wanted ? `Magnification at its limit (${value}x)` : undefined);
  }

  setDefocus(um: number): void {
    const wanted = round(finite(um, 'defocus'), 1);
    const value = clamp(wanted, DEFOCUS_MIN_UM, DEFOCUS_MAX_UM);
    this.apply({ defocus_um: value }, value !== wanted ? `Defocus at its limit (${value.toFixed(1)} um)` : undefined);
  }

  stepDefocus(steps: number): void {
    this.setDefocus(this.current.defocus_um + Math.trunc(finite(steps, 'defocus steps')) * DEFOCUS_STEP_UM);
  }

  setDoseRate(ePerPxS: number): void {
    const wanted = Math.round(finite(ePerPxS, 'dose rate'));
    const value = clamp(wanted, DOSE_RATE_MIN, DOSE_RATE_MAX);
    this.apply({ dose_rate_e_per_px_s: value }, value !== wanted ? `Dose rate at its limit (${value} e/px/s)` : undefined);
  }

  stepDoseRate(delta: number): void {
    this.setDoseRate(this.current.dose_rate_e_per_px_s + finite(delta, 'dose rate step'));
  }

  setValves(open: boolean): void {
    if (open === this.current.column_valves_open) return;
    if (!open && this.current.acquiring) {
      this.clearTimer();
      this.apply({ column_valves_open: false, acquiring: false }, 'Acquisition stopped: column valves closed');
      return;
    }
    this.apply({ column_valves_open: open }, open ? 'Column valves open' : 'Column valves closed');
  }

  toggleValves(): void {
    this.setValves(!this.current.column_valves_open);
  }

  /** False, with the reason in `status`, when the column valves are closed. */
  startAcquiring(): boolean {
    if (this.current.acquiring) return true;
    if (!this.current.column_valves_open) {
      this.apply({}, 'Column valves closed: open them to acquire');
      return false;
    }
    this.timer = setInterval(() => this.exposureDone(), this.exposureIntervalMs);
    this.apply({ acquiring: true });
    return true;
  }

  stopAcquiring(): void {
    if (!this.current.acquiring) return;
    this.clearTimer();
    this.apply({ acquiring: false }, `Acquisition stopped after ${this.current.exposures} exposures`);
  }

  toggleAcquire(): void {
    if (this.current.acquiring) this.stopAcquiring();
    else this.startAcquiring();
  }

  /** Stops the exposure timer; the state stays readable. */
  stop(): void {
    this.clearTimer();
  }

  private exposureDone(): void {
    this.apply({ exposures: this.current.exposures + 1 });
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * `status` is given for events worth a message; otherwise it says what the microscope is
   * doing, which is what an operator glancing at the panel wants to read.
   */
  private apply(patch: Patch, status?: string): void {
    const next: Mutable<MicroscopeSnapshot> = { ...this.current, ...patch };
    next.status = status ?? (next.acquiring ? `Acquiring exposure ${next.exposures + 1}` : 'Ready');
    const changed = (Object.keys(next) as (keyof MicroscopeSnapshot)[]).some((k) => next[k] !== this.current[k]);
    if (!changed) return;
    next.seq = this.current.seq + 1;
    this.current = Object.freeze(next);
    this.emit('change', this.current);
  }
}

function finite(value: number, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new RangeError(`${what} must be a finite number, not ${String(value)}`);
  return value;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
