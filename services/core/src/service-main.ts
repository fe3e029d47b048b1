/**
 * What every service's main.ts does, once: find the config file (--config FILE, else
 * CLOUDLET_CONFIG), start, stop cleanly on SIGTERM or SIGINT, and on failure exit 1 with a
 * message an admin can act on (bad config, a port in use, an exposed secret) or, for anything
 * unexpected, the stack.
 */
import { AppError } from './errors';

export interface Stoppable {
  stop(): Promise<void>;
}

/** Splits `--config FILE` out of argv; the rest are the command's own arguments. */
export function configArg(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { configFile: string | undefined; rest: string[] } {
  const at = argv.indexOf('--config');
  if (at < 0) return { configFile: env.CLOUDLET_CONFIG, rest: [...argv] };
  return { configFile: argv[at + 1], rest: [...argv.slice(0, at), ...argv.slice(at + 2)] };
}

export function failureMessage(name: string, err: unknown): string {
  const expected = err instanceof AppError || typeof (err as { syscall?: unknown } | null)?.syscall === 'string';
  return `${name}: ${expected ? (err as Error).message : ((err as Error).stack ?? String(err))}\n`;
}

export function runService(name: string, start: () => Promise<Stoppable>): void {
  start().then(
    (service) => {
      const stop = (): void => {
        service.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    },
    (err: unknown) => {
      process.stderr.write(failureMessage(name, err));
      process.exit(1);
    },
  );
}

/** For a CLI command: its exit code, or 1 with a message. */
export function runCommandMain(name: string, run: () => Promise<number>): void {
  run().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(failureMessage(name, err));
      process.exitCode = 1;
    },
  );
}
