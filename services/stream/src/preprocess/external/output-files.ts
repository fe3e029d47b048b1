/**
 * What every external-output parser needs: read a file the tool should have left, turn its text
 * into finite numbers, and fail with one error that names the file and what is wrong with it. The
 * metrics record feeds curation thresholds and charts, so a value that is not a number must stop
 * here rather than arrive as NaN.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '@cloudlet/core';

/** What a parser is told about the movie whose step just succeeded (the pipeline's template values). */
export interface ParserContext {
  /** The movie's output folder (the step's working directory). */
  out: string;
  /** The movie's file name without its last extension. */
  stem: string;
  /** Absolute path of the movie. */
  movie: string;
}

/** An external step succeeded but left output we cannot read: the message says which file and why. */
export function badOutput(file: string, problem: string, cause?: unknown): AppError {
  return new AppError(`${file}: ${problem}`, { code: 'bad_output', status: 502, publicMessage: `unreadable output: ${path.basename(file)}: ${problem}`, cause, details: { file } });
}

/** The text of `file`; missing or empty is a bad output, not an I/O accident to retry blindly. */
export async function readOutputText(file: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw badOutput(file, code === 'ENOENT' ? 'missing: the step exited but did not write it' : `cannot be read (${code ?? (err as Error).message})`, err);
  }
  if (text.trim() === '') throw badOutput(file, 'empty');
  return text;
}

export async function isFile(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

/** The first of `candidates` that exists, or a bad-output error listing every name tried. */
export async function firstExisting(candidates: readonly string[], what: string): Promise<string> {
  for (const file of candidates) if (await isFile(file)) return file;
  const dir = path.dirname(candidates[0] ?? '.');
  throw badOutput(dir, `no ${what} (looked for ${candidates.map((c) => path.basename(c)).join(', ')})`);
}

/** A token as a finite number; `what` names the field in the error. */
export function finite(token: string | undefined, file: string, what: string): number {
  if (token === undefined) throw badOutput(file, `${what}: missing`);
  // Number('') is 0 and Number(' 1') is 1: accept only what a C printf of a float could have written.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(token)) throw badOutput(file, `${what}: "${token}" is not a number`);
  const value = Number(token);
  if (!Number.isFinite(value)) throw badOutput(file, `${what}: "${token}" is out of range`);
  return value;
}

/** Lines without comments ('#' to the end of the line) and without blank lines, with their 1-based numbers. */
export function dataLines(text: string): { line: number; tokens: string[] }[] {
  const out: { line: number; tokens: string[] }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (body !== '') out.push({ line: i + 1, tokens: body.split(/\s+/) });
  });
  return out;
}

/** `file` relative to the movie's output folder, for MovieMetrics.files. */
export function relativeTo(out: string, file: string): string {
  return path.relative(out, file).split(path.sep).join('/');
}
