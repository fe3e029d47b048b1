/**
 * One movie onto disk the way a detector PC copies it to a share: opened at its final name,
 * written in chunks spread over a few seconds, closed. Whatever watches the directory sees the
 * file exist, grow and stop growing, and must decide for itself when it is whole.
 */
import fs from 'node:fs/promises';
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import { createExposure, type FrameSource } from './exposure';
import { type MovieMetadata, mrcPieces, type MrcWriteMode, type Piece, type TiffCompression, tiffPieces } from './movie-formats';

export type MovieFileFormat = 'mrc' | 'tiff';

export interface MovieParams extends MovieMetadata {
  format: MovieFileFormat;
  width: number;
  height: number;
  frames: number;
  /** MRC only: 1 (int16, default) or 0 (int8). */
  mrcMode?: MrcWriteMode;
  /** TIFF only (8-bit): 'none' (default) or 'lzw'. */
  tiffCompression?: TiffCompression;
  /** The noise and texture; the same seed gives the same movie. */
  seed?: number;
  /** Spread the writes over this long (default 0: as fast as the disk takes them). */
  writeSeconds?: number;
  /** How many writes (default 20). */
  chunks?: number;
  /** Aborting closes the file where it stands and rejects; the partial file is left for the caller. */
  signal?: AbortSignal;
  /** Exact pixel values instead of the simulated exposure (tests). */
  source?: FrameSource;
}

export interface WrittenMovie {
  path: string;
  bytes: number;
  seconds: number;
}

/** Writes a new movie at `file`; an existing file is never overwritten (EEXIST). */
export async function writeMovie(file: string, params: MovieParams): Promise<WrittenMovie> {
  const { width, height, frames } = params;
  for (const [what, v] of [
    ['width', width],
    ['height', height],
    ['frames', frames],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65536) throw new RangeError(`${what} must be an integer from 1 to 65536, not ${v}`);
  }
  const source =
    params.source ??
    createExposure({
      width,
      height,
      frames,
      dosePerFrame: params.doseRate * params.frameSeconds,
      driftPxPerFrame: params.driftPxPerFrame,
      defocusUm: params.defocusUm,
      pixelSizeA: params.pixelSizeA,
      seed: params.seed ?? 1,
    });
  const pieces = params.format === 'mrc' ? mrcPieces(source, params.mrcMode ?? 1, params) : tiffPieces(source, params.tiffCompression ?? 'none', params);
  const chunks = params.chunks ?? 20;
  if (!Number.isInteger(chunks) || chunks < 1) throw new RangeError(`chunks must be a positive integer, not ${chunks}`);
  const fh = await fs.open(file, 'wx');
  const started = performance.now();
  let bytes = 0;
  try {
    await pace(pieces, chunks, Math.max(0, params.writeSeconds ?? 0) * 1000, started, params.signal, async (data) => {
      await writeAll(fh, data);
      bytes += data.length;
    });
  } finally {
    await fh.close();
  }
  return { path: file, bytes, seconds: Math.round(performance.now() - started) / 1000 };
}

/**
 * Groups the pieces into `chunks` writes, cutting where progress crosses k/chunks (progress is
 * taken as linear across a piece), and holds write k until k+1 chunk-times after `start`:
 * absolute deadlines, so time spent generating counts towards the schedule, and a movie that
 * takes longer to generate than to pace is simply written as it comes.
 */
async function pace(pieces: Iterable<Piece>, chunks: number, durationMs: number, start: number, signal: AbortSignal | undefined, write: (data: Buffer) => Promise<void>): Promise<void> {
  let written = 0;
  let pending: Buffer[] = [];
  const flush = async (): Promise<void> => {
    signal?.throwIfAborted();
    const wait = start + ((written + 1) * durationMs) / chunks - performance.now();
    if (wait > 0) await sleep(wait, undefined, { signal });
    for (const b of pending) await write(b);
    pending = [];
    written++;
  };
  let from = 0;
  for (const piece of pieces) {
    signal?.throwIfAborted();
    let data = piece.data;
    let at = from;
    while (written < chunks - 1 && piece.progress >= (written + 1) / chunks) {
      const boundary = (written + 1) / chunks;
      const cut = piece.progress > at ? Math.round(((boundary - at) / (piece.progress - at)) * data.length) : data.length;
      pending.push(data.subarray(0, cut));
      data = data.subarray(cut);
      at = boundary;
      await flush();
    }
    if (data.length > 0) pending.push(data);
    from = piece.progress;
    // Generating is CPU work in the simulator's only thread; VNC and the API get a turn per band.
    await turn();
  }
  await flush();
}

async function writeAll(fh: fs.FileHandle, data: Buffer): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done);
    done += bytesWritten;
  }
}
