/** File primitives every service needs: atomic replace, an advisory lock, confined paths, secrets. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from './errors';

/**
 * Writes through a temporary file in the same directory, fsyncs it, then renames over the
 * target: a reader (or a crash) sees the old file or the new one, never half of either.
 */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

const LOCK_STALE_MS = 30_000;

/**
 * Runs `fn` holding `<file>.lock` (created with O_EXCL). Two admins, or an admin and the
 * portal filing an enrollment, never interleave their read-modify-write of one file. A lock
 * left by a crashed process is taken over once it is older than 30 s.
 */
export async function withFileLock<T>(file: string, fn: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const lock = `${file}.lock`;
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = lockAge(lock);
      if (age !== undefined && age > LOCK_STALE_MS) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new AppError(`timed out waiting for ${lock}`, {
          code: 'lock_timeout',
          status: 503,
          publicMessage: 'Another change is in progress; try again in a moment',
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

function lockAge(lock: string): number | undefined {
  try {
    return Date.now() - fs.statSync(lock).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Resolves `candidate` (absolute, or relative to `root`) with every symlink followed and
 * refuses anything that lands outside `root`. The path need not exist yet: its deepest existing
 * ancestor is resolved and the rest appended, so a symlinked parent cannot smuggle it out.
 */
export function confinePath(root: string, candidate: string): string {
  const realRoot = fs.realpathSync(root);
  const absolute = path.resolve(realRoot, candidate);
  const resolved = resolveExisting(absolute);
  const relative = path.relative(realRoot, resolved);
  if (relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))) {
    return resolved;
  }
  throw new AppError(`path ${candidate} resolves to ${resolved}, outside ${realRoot}`, {
    code: 'path_outside_root',
    status: 403,
    publicMessage: `The path ${candidate} is outside the allowed folder ${root}`,
  });
}

function resolveExisting(absolute: string): string {
  const rest: string[] = [];
  let current = absolute;
  for (;;) {
    try {
      return path.join(fs.realpathSync(current), ...rest.reverse());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const parent = path.dirname(current);
      if (parent === current) throw err;
      rest.push(path.basename(current));
      current = parent;
    }
  }
}

/**
 * Reads a secret from a file that only its owner may read. A file others can read is refused:
 * a secret that leaked to every local user is not one.
 */
export function readSecretFile(file: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    throw new AppError(`secret file ${file} is not readable: ${(err as Error).message}`, {
      code: 'secret_missing',
    });
  }
  if ((stat.mode & 0o077) !== 0) {
    throw new AppError(`secret file ${file} is readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`, {
      code: 'secret_exposed',
    });
  }
  const value = fs.readFileSync(file, 'utf8').trim();
  if (value === '') throw new AppError(`secret file ${file} is empty`, { code: 'secret_missing' });
  return value;
}

/** Reads the secret, creating it (random, mode 600) first when it does not exist. */
export function readOrCreateSecretFile(file: string, bytes = 32): string {
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, `${randomBytes(bytes).toString('base64url')}\n`);
      fs.closeSync(fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return readSecretFile(file);
}
