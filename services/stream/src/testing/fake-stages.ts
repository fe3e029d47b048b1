/**
 * A stand-in stage table for tests (the contract of preprocess/stage-types.ts, not the real
 * algorithms): `motion` reads the movie for real with preprocess/mrc.ts and refuses what the real
 * stages must refuse (unreadable modes, a single frame, NaNs, empty frames) as `bad_movie`; the
 * other stages return small fixed metrics. Movies whose name says so misbehave on purpose:
 * `hang` never returns, `oom` exhausts the heap, `exit` ends its thread, `throw` fails with a
 * plain error, `flaky` fails until a marker file exists in its output folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readMrcFrames, readMrcHeader } from '../preprocess/mrc';
import type { MovieMetrics } from '../preprocess/metrics';
import type { StageFn, StageInput, StageName } from '../preprocess/stage-types';

function badMovie(message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code: 'bad_movie' });
}

async function misbehave(input: StageInput): Promise<void> {
  const name = path.basename(input.movie);
  if (name.startsWith('hang')) await new Promise(() => undefined);
  if (name.startsWith('oom')) {
    const hoard: number[][] = [];
    for (;;) hoard.push(Array.from({ length: 100_000 }, (_, i) => i + hoard.length));
  }
  if (name.startsWith('exit')) process.exit(3);
  if (name.startsWith('throw')) throw new Error(`${input.stage} broke on ${name}`);
  if (name.startsWith('flaky') && !fs.existsSync(path.join(input.out, 'fixed'))) throw new Error('not yet');
}

const motion: StageFn = async (input) => {
  await misbehave(input);
  if (!input.movie.endsWith('.mrc')) return { frames: 1, engines: { motion: 'fake' } };
  let header;
  try {
    header = await readMrcHeader(input.movie);
  } catch (err) {
    throw badMovie((err as Error).message);
  }
  if (header.frames < 2) throw badMovie(`${header.frames} frame: nothing to align`);
  let z = 0;
  for await (const frame of readMrcFrames(input.movie, header)) {
    if (frame.some((v) => Number.isNaN(v))) throw badMovie(`frame ${z} holds NaN`);
    if (frame.every((v) => v === 0)) throw badMovie(`frame ${z} is empty (all zero)`);
    z++;
  }
  fs.writeFileSync(path.join(input.out, 'motion.txt'), `${z}\n`);
  return { engines: { motion: 'fake' }, frames: z, width_px: header.width, height_px: header.height, pixelSize_A: input.options.optics.pixelSize_A ?? header.pixelSizeA ?? 1, totalMotion_px: 0 };
};

/** Each later stage checks that it saw what the stages before it reported. */
function later(stage: StageName, needs: keyof MovieMetrics, metrics: MovieMetrics): StageFn {
  return async (input) => {
    await misbehave(input);
    if (input.previous[needs] === undefined) throw new Error(`${stage} ran without ${needs} from an earlier stage`);
    return { ...metrics, engines: { [stage]: 'fake' } };
  };
}

export const STAGES: Record<StageName, StageFn> = {
  motion,
  sum: later('sum', 'frames', { movieBytes: 100, reducedBytes: 10, reductionRatio: 10 }),
  ctf: later('ctf', 'reductionRatio', { defocusU_A: 15000, defocusV_A: 14000, astigmatism_A: 1000, ctfFitResolution_A: 4.5 }),
  ice: later('ice', 'defocusU_A', { iceRatio: 1.02 }),
  picking: later('picking', 'iceRatio', { particles: 42 }),
  thumbnails: later('thumbnails', 'particles', { files: { thumbnail: 'thumb.png' } }),
};
