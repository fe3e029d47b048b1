/**
 * CTF estimation from a (motion-corrected) micrograph, after CTFFIND4: average the amplitude
 * spectra of overlapping tiles, subtract a smooth radial background, find the mean defocus by
 * a 1-D search on the rotational average, then refine defocus U, V and the astigmatism angle
 * on the 2-D spectrum (grid, then simplex), and report the fit resolution: the first
 * resolution, going outwards, at which the CC of model CTF^2 and spectrum in a ring about two
 * Thon rings wide falls below `ccThreshold` (0.3, cryoSPARC's choice).
 *
 * Thon rings closer together than `minRingPeriod_px` pixels of the tile spectrum cannot be
 * sampled, so the fitting band is cut where the fitted defocus puts them that close; with
 * 512-px tiles at 1 A/px that is about 9 A at 4 um defocus. Larger tiles reach further.
 */
import { ctfModel, type CtfParams, DEFAULT_OPTICS, electronWavelength_A } from './ctf-model';
import { createFft2d, isPowerOfTwo } from './fft';
import { nelderMead } from './simplex';
import { type Band, bandPixels, normalisedSpectrum, profileCc, type Spectrum, fitRadius } from './spectrum';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { atan2, ceil, floor, hypot, max, min, sin, sqrt } = Math;

export interface CtfEstimateOptions {
  pixelSize_A: number;
  voltage_kV?: number;
  cs_mm?: number;
  amplitudeContrast?: number;
  /** Power of two; default the largest up to 512 that fits the image. */
  tileSize?: number;
  /** Fitting band, A. */
  minResolution_A?: number;
  maxResolution_A?: number;
  /** Range of the 1-D search, A. */
  minDefocus_A?: number;
  maxDefocus_A?: number;
  /** Largest astigmatism (U - V) / 2 the 2-D grid covers, A. */
  maxAstigmatism_A?: number;
  ccThreshold?: number;
  minRingPeriod_px?: number;
  /** Also fit a phase-plate phase shift (0-180 degrees). */
  phaseShift?: boolean;
}

export interface CtfEstimate {
  defocusU_A: number;
  defocusV_A: number;
  /** Direction of the defocus-U axis from the image x axis towards +y, degrees in [0, 180). */
  astigmatismAngle_deg: number;
  fitResolution_A: number;
  /** CC of model and spectrum over the fitting band. */
  cc: number;
  /** Only when asked for (options.phaseShift), degrees in [0, 180). */
  phaseShift_deg?: number;
}

export async function estimateCtf(image: Float32Array, width: number, height: number, options: CtfEstimateOptions): Promise<CtfEstimate> {
  const tile = options.tileSize ?? largestTile(width, height);
  if (!isPowerOfTwo(tile) || tile > width || tile > height) throw new RangeError(`tile size ${tile} must be a power of two no larger than the ${width}x${height} image`);
  return estimateCtfFromAmplitude(await averageAmplitude(image, width, height, tile), tile, options);
}

/** The fit on a mean amplitude spectrum of `tile`-sized tiles (averageAmplitude), computed once by callers that also draw it. */
export function estimateCtfFromAmplitude(amp: Float32Array, tile: number, options: CtfEstimateOptions): CtfEstimate {
  const o = { minResolution_A: 30, maxResolution_A: 5, minDefocus_A: 1000, maxDefocus_A: 60000, maxAstigmatism_A: 2000, ccThreshold: 0.3, minRingPeriod_px: 3, ...DEFAULT_OPTICS, ...options };
  if (amp.length !== tile * (tile / 2 + 1)) throw new RangeError(`amplitude has ${amp.length} values, not ${tile}x${tile / 2 + 1}`);
  const dk = 1 / (tile * o.pixelSize_A);
  const optics = { voltage_kV: o.voltage_kV, cs_mm: o.cs_mm, amplitudeContrast: o.amplitudeContrast };
  const lambda = electronWavelength_A(o.voltage_kV * 1000);
  const rMin = max(2, ceil(1 / (o.minResolution_A * dk)));
  const rBand = min(tile / 2 - 1, floor(1 / (max(o.maxResolution_A, 2 * o.pixelSize_A) * dk)));
  // Radius (pixels) beyond which rings at defocus df are closer than minRingPeriod_px.
  const rAlias = (df: number): number => floor(1 / (2 * lambda * df * dk * dk * o.minRingPeriod_px));
  const periodAt = (df: number) => (r: number): number => 1 / max(1e-9, 2 * lambda * df * r * dk * dk);

  // Pass 1: a fixed background window; pass 2: one Thon-ring period at the pass-1 defocus.
  // CTF^2 repeats every 180 degrees of phase shift, so a coarse grid over [0, 180) finds it.
  const coarsePhases = o.phaseShift ? Array.from({ length: 12 }, (_, i) => i * 15) : [0];
  let spectrum = normalisedSpectrum(amp, tile, () => max(8, tile / 16));
  let first = search1d(spectrum, o.minDefocus_A, o.maxDefocus_A, 50, coarsePhases);
  spectrum = normalisedSpectrum(amp, tile, periodAt(first.df));
  const finePhases = o.phaseShift ? Array.from({ length: 13 }, (_, i) => first.ps - 15 + i * 2.5) : [0];
  first = search1d(spectrum, first.df - 2000, first.df + 2000, 10, finePhases);
  const df = first.df;

  function search1d(s: Spectrum, lo: number, hi: number, step: number, phases: number[]): { df: number; ps: number } {
    let best = { df: lo, ps: 0, cc: -Infinity };
    for (let d = max(o.minDefocus_A, lo); d <= min(o.maxDefocus_A, hi); d += step) {
      const rMax = min(rBand, rAlias(d));
      if (rMax - rMin < 8) continue;
      for (const ps of phases) {
        const m = ctfModel({ ...optics, defocusU_A: d, defocusV_A: d, astigmatismAngle_deg: 0, phaseShift_deg: ps });
        const cc = profileCc(s.radial, rMin, rMax, (r) => sin(m.chiMean(r * dk)) ** 2);
        if (cc > best.cc) best = { df: d, ps, cc };
      }
    }
    return { df: best.df, ps: best.ps };
  }

  const band: Band = bandPixels(spectrum, tile, dk, rMin, min(rBand, rAlias(df + o.maxAstigmatism_A)));
  const cc2d = (mean: number, ax: number, ay: number, ps: number): number => band.cc(modelOf(optics, mean, ax, ay, ps));
  let best = { x: [df, 0, 0], cc: -Infinity };
  const step = max(100, o.maxAstigmatism_A / 10);
  for (let ax = -o.maxAstigmatism_A; ax <= o.maxAstigmatism_A; ax += step) {
    for (let ay = -o.maxAstigmatism_A; ay <= o.maxAstigmatism_A; ay += step) {
      const cc = cc2d(df, ax, ay, first.ps);
      if (cc > best.cc) best = { x: [df, ax, ay], cc };
    }
  }
  const start = o.phaseShift ? [...best.x, first.ps] : best.x;
  const steps = o.phaseShift ? [step, step / 2, step / 2, 10] : [step, step / 2, step / 2];
  const fit = nelderMead((x) => -cc2d(x[0] as number, x[1] as number, x[2] as number, o.phaseShift ? (x[3] as number) : 0), start, steps, { maxIterations: o.phaseShift ? 500 : 300, tolerance: 1e-5 });
  const [mean, ax, ay] = fit.x as [number, number, number];
  const phaseShift_deg = o.phaseShift ? ((((fit.x[3] as number) % 180) + 180) % 180) : undefined;
  const params = { ...toParams(optics, mean, ax, ay), phaseShift_deg };
  const model = ctfModel(params);
  // Start at the first Thon-ring minimum: inside it the background dominates, not rings.
  let rStart = rMin;
  const firstZero = (floor(model.chiMean(rMin * dk) / Math.PI) + 1) * Math.PI;
  while (rStart < tile / 2 && model.chiMean(rStart * dk) < firstZero) rStart++;
  const fitR = fitRadius(spectrum, tile, dk, model, rStart, periodAt(mean), o.ccThreshold);
  return {
    defocusU_A: params.defocusU_A,
    defocusV_A: params.defocusV_A,
    astigmatismAngle_deg: params.astigmatismAngle_deg,
    fitResolution_A: 1 / (fitR * dk),
    cc: -fit.value,
    ...(phaseShift_deg === undefined ? {} : { phaseShift_deg }),
  };
}

type Optics = Pick<CtfParams, 'voltage_kV' | 'cs_mm' | 'amplitudeContrast'>;

/** (mean, ax, ay) is a smooth parameterisation: no wrap-around in angle, no U/V swap. */
function toParams(optics: Optics, mean: number, ax: number, ay: number): CtfParams {
  const half = hypot(ax, ay);
  const angle = ((atan2(ay, ax) * 90) / Math.PI + 180) % 180;
  return { ...optics, defocusU_A: mean + half, defocusV_A: mean - half, astigmatismAngle_deg: angle };
}

function modelOf(optics: Optics, mean: number, ax: number, ay: number, phaseShift_deg: number): (kx: number, ky: number) => number {
  const m = ctfModel({ ...toParams(optics, mean, ax, ay), phaseShift_deg });
  return (kx, ky) => m.at(kx, ky) ** 2;
}

export function largestTile(width: number, height: number): number {
  let t = 512;
  while (t > min(width, height)) t /= 2;
  return t;
}

/** Mean amplitude spectrum (half plane, tile rows of tile/2 + 1) of tiles overlapping by half. */
export async function averageAmplitude(image: Float32Array, width: number, height: number, tile: number): Promise<Float32Array> {
  const fft = await createFft2d();
  const sum = new Float32Array(tile * (tile / 2 + 1));
  const buf = new Float32Array(tile * tile);
  let count = 0;
  for (let y0 = 0; y0 + tile <= height; y0 += tile / 2) {
    for (let x0 = 0; x0 + tile <= width; x0 += tile / 2) {
      let mean = 0;
      for (let y = 0; y < tile; y++) buf.set(image.subarray((y0 + y) * width + x0, (y0 + y) * width + x0 + tile), y * tile);
      for (const v of buf) mean += v;
      mean /= buf.length;
      for (let i = 0; i < buf.length; i++) buf[i] = (buf[i] as number) - mean;
      const p = fft.powerSpectrum(buf, tile, tile);
      for (let i = 0; i < p.length; i++) sum[i] = (sum[i] as number) + sqrt(p[i] as number);
      count++;
    }
  }
  for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) / count;
  return sum;
}
