/**
 * Phase flipping: multiplying an image's spectrum by -sign(CTF) undoes the CTF's sign changes
 * ring by ring, so the contrast of every band matches the band below the first zero (dark
 * particles stay dark) and a particle's rings add up instead of cancelling. Done before
 * picking on defocused micrographs, where the unflipped fringes smear a particle's blob.
 */
import { type CtfParams, ctfModel } from './ctf-model';
import { createFft2d, fftHeight, fftWidth, signedIndex } from './fft';

export async function phaseFlip(image: Float32Array, width: number, height: number, pixelSize_A: number, ctf: CtfParams): Promise<Float32Array> {
  const fw = fftWidth(width);
  const fh = fftHeight(height);
  let mean = 0;
  for (const v of image) mean += v;
  mean /= image.length;
  // Pad with the mean (no edge step to ring) to a size PFFFT can transform.
  const padded = new Float32Array(fw * fh).fill(mean);
  for (let y = 0; y < height; y++) padded.set(image.subarray(y * width, (y + 1) * width), y * fw);
  const fft = await createFft2d();
  const s = fft.forward(padded, fw, fh);
  const model = ctfModel(ctf);
  const hw = fw / 2 + 1;
  for (let y = 0; y < fh; y++) {
    const ky = signedIndex(y, fh) / (fh * pixelSize_A);
    for (let x = 0; x < hw; x++) {
      if (model.at(x / (fw * pixelSize_A), ky) <= 0) continue;
      const i = (y * hw + x) * 2;
      s.data[i] = -(s.data[i] as number);
      s.data[i + 1] = -(s.data[i + 1] as number);
    }
  }
  const flipped = fft.inverse(s);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) out.set(flipped.subarray(y * fw, y * fw + width), y * width);
  return out;
}
