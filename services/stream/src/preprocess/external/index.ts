/**
 * Parsers for the outputs of external pre-processing programs, by the name a pipeline step gives
 * in `metrics:`. Each reads what its program left in the movie's output folder and returns the
 * shared MovieMetrics record, or throws an AppError with code 'bad_output' naming the file.
 */
import type { MovieMetrics } from '../metrics';
import { parseCtffind } from './ctffind';
import { parseMotioncor2 } from './motioncor2';
import type { ParserContext } from './output-files';
import { parseRelionMotioncorr } from './relion-motioncorr';

export type ExternalParser = (ctx: ParserContext) => Promise<MovieMetrics>;

export const EXTERNAL_PARSERS: Record<string, ExternalParser> = {
  motioncor2: parseMotioncor2,
  relion_motioncorr: parseRelionMotioncorr,
  ctffind4: (ctx) => parseCtffind(ctx, 4),
  ctffind5: (ctx) => parseCtffind(ctx, 5),
};

export type { ParserContext } from './output-files';
export { parseCtffindText, type CtffindResult } from './ctffind';
export { parseMotioncor2Log } from './motioncor2';
export { parseRelionMotionStar } from './relion-motioncorr';
