/**
 * Finds movies in the watched roots. Event mode (inotify through fs.watch) where the filesystem
 * delivers events; polling for network mounts, where it rescans only directories whose mtime
 * changed plus files still settling, never the whole tree. A file becomes a movie when its size
 * and mtime held still for the settle time AND its format check passes; one that vanishes,
 * stays partial too long or is not a movie is passed over with a reason.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errorMessage, type Logger } from '@cloudlet/core';
import { matcher } from './glob';

export interface WatchRoot {
  path: string;
  mode: 'event' | 'poll';
  include: readonly string[];
}

export type CheckResult = { complete: true; format: string; width: number; height: number; frames: number; bytes: number } | { complete: false; retry: boolean; reason: string };

export interface SettledFile {
  root: string;
  relPath: string;
  absPath: string;
  size: number;
  mtimeMs: number;
  foundAt: number;
  settledAt: number;
  check: Extract<CheckResult, { complete: true }>;
}

export interface WatcherOptions {
  roots: readonly WatchRoot[];
  settleMs: number;
  pollIntervalMs: number;
  /** A file that stays incomplete this long after it stopped changing is given up on. */
  partialTimeoutMs: number;
  check(absPath: string): Promise<CheckResult>;
  /** Whether (size, mtime) of this file was already dealt with (a restart's memory, from the ledger). */
  alreadyHandled(root: string, relPath: string, size: number, mtimeMs: number): boolean;
  onSettled(file: SettledFile): Promise<void> | void;
  onPassedOver(root: string, relPath: string, status: 'rejected' | 'vanished', reason: string, size: number | null): void;
  /** A file that cannot be checked yet (permission denied): still watched, the reason recorded. */
  onProblem?(root: string, relPath: string, reason: string, size: number | null): void;
  log: Logger;
}

interface Tracked {
  size: number;
  mtimeMs: number;
  foundAt: number;
  stableSince: number;
  checking: boolean;
  /** The last reason it could not be checked, so the ledger and the log hear it once. */
  problem?: string;
}

class RootWatcher {
  readonly tracked = new Map<string, Tracked>();
  /** Files already resolved, by the (size, mtime) they had: skipped until they change. */
  private readonly handled = new Map<string, string>();
  /** Per directory: the mtime it was listed at and the subdirectories it had then. */
  private readonly dirs = new Map<string, { mtime: number; subdirs: string[] }>();
  private readonly include: (rel: string) => boolean;
  private fsWatcher: fs.FSWatcher | undefined;
  available = true;
  scans = 0;

  constructor(readonly root: WatchRoot, private readonly opts: WatcherOptions) {
    this.include = matcher(root.include);
  }

  start(): void {
    if (this.root.mode === 'event') this.watchEvents();
  }

  /** Event mode with a live watch; otherwise the periodic scan has to find things. */
  get watching(): boolean {
    return this.fsWatcher !== undefined;
  }

  stop(): void {
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
  }

  private watchEvents(): void {
    try {
      this.fsWatcher = fs.watch(this.root.path, { recursive: true }, (_event, filename) => {
        if (filename) this.consider(filename.toString(), Date.now());
      });
      this.fsWatcher.on('error', (err) => {
        // Typically the root itself went away; the scan notices and restarts watching when it is back.
        this.opts.log.warn({ root: this.root.path, error: errorMessage(err) }, 'watch events stopped; rescanning by polling');
        this.fsWatcher?.close();
        this.fsWatcher = undefined;
      });
    } catch (err) {
      this.opts.log.warn({ root: this.root.path, error: errorMessage(err) }, 'cannot watch for events; polling instead');
    }
  }

  /** An event (or a scan) says something happened at relPath. */
  consider(relPath: string, now: number): void {
    if (!this.include(relPath)) return;
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(path.join(this.root.path, relPath));
    } catch {
      return; // gone already: a temp file, or deleted; settling entries handle their own vanishing
    }
    if (!stat.isFile()) return;
    this.observe(relPath, stat, now);
  }

  private observe(relPath: string, stat: fs.Stats, now: number): void {
    const signature = `${stat.size}:${stat.mtimeMs}`;
    if (this.handled.get(relPath) === signature) return;
    const t = this.tracked.get(relPath);
    if (!t) {
      if (this.opts.alreadyHandled(this.root.path, relPath, stat.size, stat.mtimeMs)) {
        this.handled.set(relPath, signature);
        return;
      }
      this.tracked.set(relPath, { size: stat.size, mtimeMs: stat.mtimeMs, foundAt: now, stableSince: now, checking: false });
    } else if (t.size !== stat.size || t.mtimeMs !== stat.mtimeMs) {
      t.size = stat.size;
      t.mtimeMs = stat.mtimeMs;
      t.stableSince = now;
    }
  }

  /**
   * A full walk at start (reconciling with the ledger); afterwards, in poll mode, only
   * directories whose mtime changed are listed again. Symlinks are not followed: a link loop or a
   * link out of the share cannot drag the scan along.
   */
  scan(now: number, full: boolean): void {
    this.scans++;
    try {
      fs.statSync(this.root.path);
      if (!this.available) {
        this.opts.log.info({ root: this.root.path }, 'root is back');
        full = true;
        this.available = true;
        if (this.root.mode === 'event' && !this.fsWatcher) this.watchEvents();
      }
    } catch (err) {
      if (this.available) this.opts.log.error({ root: this.root.path, error: errorMessage(err) }, 'root unavailable (share unmounted?); waiting for it');
      this.available = false;
      return;
    }
    const stack = [''];
    while (stack.length > 0) {
      const rel = stack.pop() as string;
      const abs = path.join(this.root.path, rel);
      let mtime: number;
      try {
        mtime = fs.statSync(abs).mtimeMs;
      } catch {
        this.dirs.delete(rel);
        continue;
      }
      const known = this.dirs.get(rel);
      // A directory changed in the last two seconds is listed again even if its mtime looks the
      // same: network filesystems keep whole-second mtimes, and two changes in one second would
      // otherwise hide the second.
      if (!full && known && known.mtime === mtime && now - mtime > 2000) {
        // Unchanged directory: no listing, only its subdirectories to visit. One stat, not N.
        stack.push(...known.subdirs);
        continue;
      }
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(abs, { withFileTypes: true });
      } catch (err) {
        this.opts.log.warn({ dir: abs, error: errorMessage(err) }, 'cannot list directory');
        continue;
      }
      const subdirs: string[] = [];
      for (const entry of entries) {
        const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (entry.isDirectory()) subdirs.push(childRel);
        else if (entry.isFile()) this.consider(childRel, now);
      }
      this.dirs.set(rel, { mtime, subdirs });
      stack.push(...subdirs);
    }
  }

  /** Stats the files still settling; hands on those that held still long enough. */
  settle(now: number): Promise<void>[] {
    const work: Promise<void>[] = [];
    for (const [relPath, t] of this.tracked) {
      if (t.checking) continue;
      const abs = path.join(this.root.path, relPath);
      let stat: fs.Stats;
      try {
        stat = fs.statSync(abs);
      } catch {
        this.tracked.delete(relPath);
        this.opts.onPassedOver(this.root.path, relPath, 'vanished', 'deleted or moved away while still being written', t.size);
        continue;
      }
      this.observe(relPath, stat, now);
      if (now - t.stableSince < this.opts.settleMs) continue;
      t.checking = true;
      work.push(this.checkOne(relPath, abs, t, now));
    }
    return work;
  }

  private async checkOne(relPath: string, abs: string, t: Tracked, now: number): Promise<void> {
    try {
      const result = await this.opts.check(abs);
      if (result.complete) {
        this.tracked.delete(relPath);
        this.handled.set(relPath, `${t.size}:${t.mtimeMs}`);
        await this.opts.onSettled({ root: this.root.path, relPath, absPath: abs, size: t.size, mtimeMs: t.mtimeMs, foundAt: t.foundAt, settledAt: now, check: result });
      } else if (!result.retry || now - t.stableSince > this.opts.partialTimeoutMs) {
        this.tracked.delete(relPath);
        this.handled.set(relPath, `${t.size}:${t.mtimeMs}`);
        this.opts.onPassedOver(this.root.path, relPath, 'rejected', result.retry ? `stayed incomplete: ${result.reason}` : result.reason, t.size);
      }
    } catch (err) {
      // Permission denied and friends: record why, keep it, and look again; it may be fixed.
      const reason = `cannot read: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`;
      if (t.problem !== reason) {
        t.problem = reason;
        this.opts.log.warn({ file: abs, error: errorMessage(err) }, 'cannot check file');
        this.opts.onProblem?.(this.root.path, relPath, reason, t.size);
      }
      t.stableSince = now;
    } finally {
      t.checking = false;
    }
  }
}

export class Watcher {
  private readonly roots: RootWatcher[];
  private timers: NodeJS.Timeout[] = [];
  private inflight = new Set<Promise<void>>();

  constructor(private readonly opts: WatcherOptions) {
    this.roots = opts.roots.map((r) => new RootWatcher(r, opts));
  }

  /** Reconciles with the disk (a full walk), then watches. */
  start(): void {
    const now = Date.now();
    for (const r of this.roots) {
      r.scan(now, true);
      r.start();
    }
    // Event roots check their settling files often (detection delay is settle time + this);
    // poll roots rescan changed directories every poll interval.
    const settleTick = Math.max(50, Math.min(250, Math.floor(this.opts.settleMs / 4)));
    this.timers.push(setInterval(() => this.tick(false), settleTick));
    this.timers.push(setInterval(() => this.tick(true), this.opts.pollIntervalMs));
  }

  /** One round: rescans poll roots when `scan`, settles everything. Exposed for tests and benches. */
  tick(scan: boolean): void {
    const now = Date.now();
    for (const r of this.roots) {
      if (scan && (r.root.mode === 'poll' || !r.watching || !r.available)) r.scan(now, false);
      for (const p of r.settle(now)) {
        this.inflight.add(p);
        void p.finally(() => this.inflight.delete(p));
      }
    }
  }

  settling(): number {
    return this.roots.reduce((n, r) => n + r.tracked.size, 0);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const r of this.roots) r.stop();
    await Promise.all([...this.inflight]);
  }
}
