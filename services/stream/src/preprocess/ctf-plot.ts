/**
 * The CTF diagnostic image: the background-subtracted power spectrum, zero frequency in the
 * centre, with the fitted model's CTF^2 in the right half, so a user sees at a glance whether
 * the model's rings continue the measured ones (CTFFIND's diagnostic layout).
 */
import { ctfModel, type CtfParams, electronWavelength_A } from './ctf-model';
import { encodeGreyPng, scaleToBytes } from './png';
import { normalisedSpectrum } from './spectrum';

// Tests run under jest's vm contexts, where every global lookup (Math, Number) is ~50x slower
// than a local one; the per-pixel loops here use these locals instead.
const { max } = Math;

export function ctfDiagnosticPng(amp: Float32Array, tile: number, pixelSize_A: number, params: CtfParams): Buffer {
  const dk = 1 / (tile * pixelSize_A);
  const lambda = electronWavelength_A(params.voltage_kV * 1000);
  const mean = (params.defocusU_A + params.defocusV_A) / 2;
  const spectrum = normalisedSpectrum(amp, tile, (r) => 1 / max(1e-9, 2 * lambda * mean * r * dk * dk));
  const model = ctfModel(params);
  const hw = tile / 2 + 1;
  const data = new Float32Array(tile * tile);
  const fit = new Float32Array(tile * tile);
  for (let y = 0; y < tile; y++) {
    const ky = y - tile / 2;
    for (let x = 0; x < tile; x++) {
      const kx = x - tile / 2;
      // Negative kx lives in the stored half at -k: F(-k) = conj F(k) has the same power.
      const row = kx >= 0 ? (ky + tile) % tile : (tile - ky) % tile;
      data[y * tile + x] = spectrum.normalised[row * hw + (kx >= 0 ? kx : -kx)] as number;
      fit[y * tile + x] = model.at(kx * dk, ky * dk) ** 2;
    }
  }
  const left = scaleToBytes(data, 2, 98);
  const right = scaleToBytes(fit, 0, 100);
  const pixels = new Uint8Array(tile * tile);
  for (let y = 0; y < tile; y++) {
    for (let x = 0; x < tile; x++) pixels[y * tile + x] = (x >= tile / 2 ? right : left)[y * tile + x] as number;
  }
  return encodeGreyPng(pixels, tile, tile);
}
