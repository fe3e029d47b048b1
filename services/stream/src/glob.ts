/**
 * Include patterns for watched roots: `**` (any depth), `*` and `?` (within one name), and
 * `{a,b}` alternatives, matched against paths relative to the root. Small on purpose: Node 20's
 * path.matchesGlob is still experimental and warns on every start.
 */
export function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      // "**/" matches zero or more directories; a trailing "**" matches anything.
      if (pattern[i + 2] === '/') {
        out += '(?:.*/)?';
        i += 2;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '{') {
      const end = pattern.indexOf('}', i);
      if (end === -1) throw new Error(`unclosed { in ${pattern}`);
      out += `(?:${pattern.slice(i + 1, end).split(',').map(escape).join('|')})`;
      i = end;
    } else out += escape(c);
  }
  return new RegExp(`^${out}$`, 's');
}

function escape(text: string): string {
  return text.replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
}

export function matcher(patterns: readonly string[]): (relPath: string) => boolean {
  const res = patterns.map(globToRegExp);
  return (relPath) => res.some((re) => re.test(relPath));
}
