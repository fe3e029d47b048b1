/**
 * Runs CTFFIND (or any program that asks its questions on stdin) with answers given as
 * arguments: `node ctffind-run.js <program> [its options...] -- <answer>...`. CTFFIND has no flags
 * for its parameters, and the usual recipe, a shell here-document, would put template values
 * (movie names, paths) into shell text. Here every value stays one argv element from the pipeline
 * to this process, and goes to the program only as one line of its stdin.
 *
 * A value with a line break would become two answers and shift every later one (a file named
 * "a\nyes" answering the next question), so such values are refused before anything runs.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';

export interface AnswerRun {
  command: string;
  args: string[];
  answers: string[];
}

export class UsageError extends Error {}

/** Exit status for a program that cannot be started: the executor reports 127 as "not found or not executable". */
export const CANNOT_RUN = 127;
const USAGE = 'usage: ctffind-run <program> [program options...] -- <answer> [<answer>...]';

export function parseAnswerArgs(argv: readonly string[]): AnswerRun {
  const sep = argv.indexOf('--');
  if (sep < 1) throw new UsageError(`${USAGE}\n(missing the program or the "--" before the answers)`);
  const [command = '', ...args] = argv.slice(0, sep);
  const answers = argv.slice(sep + 1);
  if (answers.length === 0) throw new UsageError(`${USAGE}\n(no answers after "--")`);
  answers.forEach((a, i) => {
    if (/[\r\n\0]/.test(a)) throw new UsageError(`answer ${i + 1} contains a line break or NUL, which would split it into several answers: ${JSON.stringify(a)}`);
  });
  return { command, args, answers };
}

/** Starts the program, writes one answer per line, closes its stdin; resolves with its exit status. */
export function runWithAnswers(run: AnswerRun, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(run.command, run.args, { stdio: ['pipe', 'inherit', 'inherit'] });
    child.once('error', (err) => {
      log(`ctffind-run: cannot run ${run.command}: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      resolve(CANNOT_RUN);
    });
    // A program that exits before reading everything closes the pipe; its exit status says why, not EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(run.answers.map((a) => `${a}\n`).join(''));
    child.once('exit', (code, signal) => {
      if (signal) log(`ctffind-run: ${run.command} killed by ${signal}`);
      // The shell's convention for "killed by signal n", so the executor's log reads the same either way.
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
}

export async function main(argv: readonly string[]): Promise<number> {
  let run: AnswerRun;
  try {
    run = parseAnswerArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`ctffind-run: ${err.message}\n`);
    return 2;
  }
  return runWithAnswers(run);
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
