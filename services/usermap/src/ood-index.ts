/**
 * The compiled index read by the `cloudlet-user-map` shell reader: one line per identity of
 * the configured OOD issuer held by an active person, `<escaped sub>\t<username>\t<uid>`,
 * sorted bytewise so `look(1)` can binary-search it. OOD starts the mapper on every request,
 * so the reader must not start Node (60 ms here) or parse YAML; a `look` costs ~1 ms.
 */
import { writeFileAtomic } from '@cloudlet/core';
import { oodEscape } from './ood-escape';
import type { UserMap } from './usermap';

export const INDEX_HEADER = '#cloudlet-usermap-index v1';

export function compileOodIndex(map: UserMap, issuer: string): string {
  const lines: string[] = [];
  for (const person of map.doc.people) {
    if (person.status !== 'active') continue;
    for (const ident of person.identities) {
      if (ident.iss !== issuer) continue;
      lines.push(`${oodEscape(ident.sub)}\t${person.account.username}\t${person.account.uid}`);
    }
  }
  // Escaped keys are ASCII, so UTF-16 order equals the byte order look(1) expects under LC_ALL=C.
  lines.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `${INDEX_HEADER}\n${lines.join('\n')}${lines.length > 0 ? '\n' : ''}`;
}

export function writeOodIndex(file: string, map: UserMap, issuer: string): number {
  const text = compileOodIndex(map, issuer);
  writeFileAtomic(file, text, 0o644);
  return text.split('\n').length - 2;
}
