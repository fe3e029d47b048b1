/**
 * The contrast transfer function of DESIGN.md section 5, shared by the estimator (ctf.ts) and
 * the synthetic data that tests it. Conventions: defocus positive = underfocus, in Angstrom;
 * the astigmatism angle is that of the defocus-U axis, measured from the image x axis (columns)
 * towards +y (increasing row index), in degrees; spatial frequencies in 1/A.
 */

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { atan, cos, sin, sqrt } = Math;

export interface CtfParams {
  defocusU_A: number;
  defocusV_A: number;
  astigmatismAngle_deg: number;
  voltage_kV: number;
  cs_mm: number;
  amplitudeContrast: number;
  /** Extra phase from a phase plate, degrees; 0 when absent. */
  phaseShift_deg?: number;
}

export const DEFAULT_OPTICS = { voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07 } as const;

/** Relativistic electron wavelength in A for an accelerating voltage in volts. */
export function electronWavelength_A(voltage_V: number): number {
  return 12.2643 / sqrt(voltage_V * (1 + 0.978466e-6 * voltage_V));
}

/** Precomputed constants so that the CTF can be evaluated per Fourier pixel cheaply. */
export interface CtfModel {
  /** CTF at frequency (kx, ky) in 1/A. */
  at(kx: number, ky: number): number;
  /** chi without the astigmatism (defocus = mean), for a radial frequency k. */
  chiMean(k: number): number;
  params: CtfParams;
}

export function ctfModel(p: CtfParams): CtfModel {
  const lambda = electronWavelength_A(p.voltage_kV * 1000);
  const cs = p.cs_mm * 1e7;
  const q = p.amplitudeContrast;
  const phase = atan(q / sqrt(1 - q * q)) + ((p.phaseShift_deg ?? 0) * Math.PI) / 180;
  const mean = (p.defocusU_A + p.defocusV_A) / 2;
  const half = (p.defocusU_A - p.defocusV_A) / 2;
  const ang = (p.astigmatismAngle_deg * Math.PI) / 180;
  // df(theta) = mean + half cos 2(theta - ang), expanded so no atan2 is needed per pixel.
  const ax = half * cos(2 * ang);
  const ay = half * sin(2 * ang);
  const a = Math.PI * lambda;
  const b = (Math.PI / 2) * cs * lambda ** 3;
  return {
    params: p,
    at(kx, ky) {
      const k2 = kx * kx + ky * ky;
      if (k2 === 0) return -sin(phase);
      const cos2 = (kx * kx - ky * ky) / k2;
      const sin2 = (2 * kx * ky) / k2;
      const df = mean + ax * cos2 + ay * sin2;
      return -sin(a * df * k2 - b * k2 * k2 + phase);
    },
    chiMean(k) {
      const k2 = k * k;
      return a * mean * k2 - b * k2 * k2 + phase;
    },
  };
}
