/**
 * OOD's mod_ood_proxy passes the authenticated user to `user_map_cmd` through Apache's
 * `r:escape`, which is `ap_escape_urlencoded`: ASCII letters, digits and `. - * _` stay,
 * a space becomes `+`, every other byte becomes `%XX` with upper-case hex. The compiled index
 * stores keys in exactly that form, so the shell reader can match bytes without decoding.
 */
const KEEP = /[A-Za-z0-9.\-*_]/;

export function oodEscape(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (byte < 0x80 && KEEP.test(ch)) out += ch;
    else if (ch === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Decodes what a caller passed, tolerating other encoders (lower-case hex, `%20` for space).
 * Returns undefined for malformed input (a stray `%`, bytes that are not UTF-8).
 */
export function oodUnescape(value: string): string | undefined {
  if (/%(?![0-9A-Fa-f]{2})/.test(value)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (ch === '%') {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (ch === '+') {
      bytes.push(0x20);
    } else {
      bytes.push(...Buffer.from(ch, 'utf8'));
    }
  }
  const decoded = Buffer.from(bytes);
  const text = decoded.toString('utf8');
  return Buffer.from(text, 'utf8').equals(decoded) ? text : undefined;
}
