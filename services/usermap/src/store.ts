/**
 * Reading, watching and changing the usermap file. A bad edit never takes effect: the store
 * keeps serving the last good map (and the OOD index keeps its last good content) while the
 * admin is told every problem. Changes made through `update` are validated against the
 * current map, written atomically under a lock, and the index is recompiled at once.
 */
import fs from 'node:fs';
import yaml from 'js-yaml';
import { AppError, ConfigError, errorMessage, type Logger, withFileLock, writeFileAtomic } from '@cloudlet/core';
import { writeOodIndex } from './ood-index';
import { type UsermapDoc, validateUsermap } from './schema';
import { UserMap } from './usermap';

export function parseUsermapText(text: string, source: string, previous?: UsermapDoc): UserMap {
  let doc: unknown;
  try {
    doc = yaml.load(text, { schema: yaml.CORE_SCHEMA, filename: source });
  } catch (err) {
    throw new ConfigError(source, [`not valid YAML: ${errorMessage(err)}`]);
  }
  const result = validateUsermap(doc, previous);
  if (!result.ok) throw new ConfigError(source, result.problems);
  return new UserMap(result.doc);
}

export function readUsermapFile(file: string, previous?: UsermapDoc): UserMap {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the usermap: ${errorMessage(err)}`]);
  }
  return parseUsermapText(text, file, previous);
}

export interface UsermapStoreOptions {
  file: string;
  /** Where the OOD index goes, and for which issuer; both or neither. */
  indexFile?: string | undefined;
  oodIssuer?: string | undefined;
  log: Logger;
}

export class UsermapStore {
  private current: UserMap;
  private watcher: NodeJS.Timeout | undefined;
  private checking = false;
  /** The file's stat when it was last read, good or bad. */
  private seen: fs.Stats | undefined;
  private readonly listeners = new Set<(map: UserMap) => void>();
  /** Problems with the file on disk when it is not the map being served; empty when in sync. */
  problems: readonly string[] = [];

  private constructor(private readonly options: UsermapStoreOptions, initial: UserMap) {
    this.current = initial;
  }

  /** Loads the file; refuses to start on an invalid one (there is no last good map yet). */
  static open(options: UsermapStoreOptions): UsermapStore {
    const seen = statOrUndefined(options.file);
    const store = new UsermapStore(options, readUsermapFile(options.file));
    store.seen = seen;
    store.writeIndex();
    return store;
  }

  get map(): UserMap {
    return this.current;
  }

  onChange(listener: (map: UserMap) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Reloads from disk. On success the new map is served and the index rewritten; on failure
   * the last good map stays and every problem is logged. Returns whether the new map took.
   */
  reload(): boolean {
    this.seen = statOrUndefined(this.options.file);
    try {
      const next = readUsermapFile(this.options.file, this.current.doc);
      this.current = next;
      this.problems = [];
      this.writeIndex();
      this.options.log.info({ file: this.options.file, people: next.size }, 'usermap loaded');
      for (const listener of this.listeners) listener(next);
      return true;
    } catch (err) {
      this.problems = err instanceof ConfigError ? err.problems : [errorMessage(err)];
      this.options.log.error(
        { file: this.options.file, problems: this.problems },
        'usermap on disk is invalid; still serving the last good map',
      );
      return false;
    }
  }

  /**
   * Watches the file by polling its stat (which also works over NFS and sees the rename of an
   * atomic write) against the stat taken when the served map was read, so an edit made before
   * the watch began is not missed. One stat per interval.
   */
  watch(intervalMs = 1000): void {
    if (this.watcher) return;
    this.watcher = setInterval(() => {
      if (this.checking) return;
      this.checking = true;
      fs.promises
        .stat(this.options.file)
        .then((now) => {
          const seen = this.seen;
          if (!seen || now.mtimeMs !== seen.mtimeMs || now.ino !== seen.ino || now.size !== seen.size) {
            this.seen = now;
            this.reload();
          }
        })
        .catch((err: unknown) => {
          if (this.seen !== undefined) this.options.log.error({ file: this.options.file, error: errorMessage(err) }, 'usermap file unreadable; still serving the last good map');
          this.seen = undefined;
        })
        .finally(() => {
          this.checking = false;
        });
    }, intervalMs);
    this.watcher.unref();
  }

  close(): void {
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = undefined;
    this.listeners.clear();
  }

  private writeIndex(): void {
    const { indexFile, oodIssuer } = this.options;
    if (!indexFile || !oodIssuer) return;
    const entries = writeOodIndex(indexFile, this.current, oodIssuer);
    this.options.log.debug({ indexFile, entries }, 'OOD index written');
  }
}

/**
 * Read-modify-write of the usermap file under a lock: `change` edits a copy of the document;
 * the result must validate against the file as it was (so history rules hold), then it is
 * written atomically and the index recompiled. Comments in the file are not kept: the admin
 * CLI owns files it writes. Returns the new map.
 */
export async function updateUsermapFile(
  file: string,
  change: (doc: UsermapDoc) => void,
  index?: { file: string; issuer: string },
): Promise<UserMap> {
  return withFileLock(file, () => {
    const before = readUsermapFile(file);
    const draft = structuredClone(before.doc);
    change(draft);
    const result = validateUsermap(draft, before.doc);
    if (!result.ok) throw new ConfigError(`${file} (after this change)`, result.problems);
    writeFileAtomic(file, dumpUsermap(result.doc), fileMode(file));
    const next = new UserMap(result.doc);
    if (index) writeOodIndex(index.file, next, index.issuer);
    return next;
  });
}

export function dumpUsermap(doc: UsermapDoc): string {
  const header = '# Cloudlet usermap (version 1). Edit with `cloudlet-usermap`, or by hand and run `cloudlet-usermap validate`.\n';
  return header + yaml.dump(doc, { noRefs: true, lineWidth: 120, sortKeys: false });
}

function statOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
  }
}

function fileMode(file: string): number {
  try {
    return fs.statSync(file).mode & 0o777;
  } catch {
    return 0o640;
  }
}

export function notFound(what: string): AppError {
  return new AppError(`${what} not found`, { code: 'not_found', status: 404 });
}
