/**
 * Where a job may read and write. Local sources are resolved with every symlink followed and
 * confined to `local_roots`; remote destinations are checked as text against the cluster's
 * `allowed_remote_roots`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError, confinePath } from '@cloudlet/core';

function refused(message: string, code = 'path_refused'): AppError {
  return new AppError(message, { code, status: 403, publicMessage: message });
}

/** The first allowed root that `candidate` (absolute, symlinks followed) lands under. */
export function confineLocal(roots: readonly string[], candidate: string): { root: string; resolved: string } {
  if (!path.isAbsolute(candidate)) throw refused(`local path ${JSON.stringify(candidate)} must be absolute`);
  if (candidate.split('/').includes('..')) throw refused(`local path ${JSON.stringify(candidate)} contains "..": name the folder directly`);
  const problems: string[] = [];
  for (const root of roots) {
    if (!fs.existsSync(root)) continue;
    try {
      return { root: fs.realpathSync(root), resolved: confinePath(root, candidate) };
    } catch (err) {
      if ((err as AppError).code !== 'path_outside_root') throw err;
      problems.push((err as AppError).message);
    }
  }
  throw refused(`local path ${JSON.stringify(candidate)} is outside the allowed folders (${roots.join(', ')})${problems.length ? `: ${problems[0]}` : ''}`, 'path_outside_root');
}

/**
 * A remote destination directory, normalized, if it lies under an allowed root. The check is on
 * the text alone: resolving symlinks would mean asking the remote side (`realpath` over ssh),
 * whose answer can change before rsync writes. So the rule is that the path as written names a
 * place under an allowed root, with no `..` to climb out and no relative form whose meaning
 * depends on the remote login directory; what a remote symlink then reaches is bounded by the
 * remote account's own permissions, which the identity check ties to the right person.
 */
export function confineRemote(allowedRoots: readonly string[], dest: string): string {
  if (dest.includes('\0') || dest.includes('\n')) throw refused(`remote path ${JSON.stringify(dest)} contains a control character`);
  if (!dest.startsWith('/')) throw refused(`remote path ${JSON.stringify(dest)} must be absolute (it would depend on the remote login directory)`);
  if (dest.split('/').includes('..')) throw refused(`remote path ${JSON.stringify(dest)} contains "..": name the folder directly`);
  const normalized = stripSlash(path.posix.normalize(dest));
  for (const root of allowedRoots) {
    const r = stripSlash(path.posix.normalize(root));
    if (normalized === r || normalized.startsWith(r === '/' ? '/' : `${r}/`)) return normalized;
  }
  throw refused(`remote path ${JSON.stringify(dest)} is outside the allowed folders on the cluster (${allowedRoots.join(', ')})`, 'path_outside_root');
}

function stripSlash(p: string): string {
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

export interface SourceFile {
  /** Relative to the source directory, `/`-separated: the name it gets under the destination. */
  rel: string;
  /** The file to read (symlinks resolved). */
  local: string;
  size: number;
}

/**
 * The regular files of a job: every file under `dir`, or only `names` (relative to `dir`).
 * Each is confined on its own, so a symlink inside the folder that points out is refused.
 */
export function listSource(roots: readonly string[], dir: string, names?: readonly string[]): { base: string; files: SourceFile[] } {
  const { resolved: base } = confineLocal(roots, dir);
  if (!fs.statSync(base).isDirectory()) throw refused(`local source ${JSON.stringify(dir)} is not a folder`);
  const entries = names ? names.map((n) => ({ rel: checkRel(n), plain: false })) : walk(base, '');
  const out: SourceFile[] = [];
  for (const { rel, plain } of entries) {
    // A regular file the walk reached through real folders under the confined base is its own
    // real path; resolving it again (an lstat per path component) took seconds for 20,000 files.
    const resolved = plain ? path.join(base, rel) : confineLocal(roots, path.join(base, rel)).resolved;
    const stat = fs.statSync(resolved, { throwIfNoEntry: false });
    if (!stat?.isFile()) throw refused(`local file ${JSON.stringify(rel)} in ${dir} is not a regular file`);
    out.push({ rel, local: resolved, size: stat.size });
  }
  if (out.length === 0) throw refused(`local source ${JSON.stringify(dir)} holds no files`);
  return { base, files: out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0)) };
}

function checkRel(name: string): string {
  if (name === '' || name.startsWith('/') || name.split('/').some((s) => s === '..' || s === '.' || s === '')) {
    throw refused(`file name ${JSON.stringify(name)} must be relative to the source folder, without "..", "." or empty parts`);
  }
  return name;
}

/**
 * Regular files (`plain`) and symlinks (to be confined by the caller); symlinked folders are not
 * entered, so every folder on the way to a plain file is a real one.
 */
function walk(base: string, rel: string): { rel: string; plain: boolean }[] {
  const out: { rel: string; plain: boolean }[] = [];
  for (const entry of fs.readdirSync(path.join(base, rel), { withFileTypes: true })) {
    const child = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...walk(base, child));
    else if (entry.isFile() || entry.isSymbolicLink()) out.push({ rel: child, plain: entry.isFile() });
  }
  return out;
}
