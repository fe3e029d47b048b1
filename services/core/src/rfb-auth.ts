/**
 * RFB (RFC 6143) security type 2, "VNC Authentication": the server sends 16 random bytes, the
 * client returns them DES-encrypted with the password (first 8 bytes, zero-padded) as the key,
 * each key byte's bits reversed. Node 20's OpenSSL has no single-DES ECB; two-key 3DES with
 * both halves equal (des-ede-ecb, K1 = K2) computes exactly single DES.
 */
import { createCipheriv, randomBytes, timingSafeEqual } from 'node:crypto';

export const VNC_CHALLENGE_BYTES = 16;
/** VNC passwords are at most 8 bytes; longer ones are silently cut by every implementation. */
export const VNC_PASSWORD_MAX = 8;

function reverseBits(byte: number): number {
  let out = 0;
  for (let i = 0; i < 8; i++) out |= ((byte >> i) & 1) << (7 - i);
  return out;
}

function vncKey(password: string): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'latin1').copy(key, 0, 0, VNC_PASSWORD_MAX);
  for (let i = 0; i < 8; i++) key[i] = reverseBits(key[i] as number);
  return key;
}

/** The 16-byte response a client sends for `challenge` and `password`. */
export function vncAuthResponse(challenge: Buffer, password: string): Buffer {
  if (challenge.length !== VNC_CHALLENGE_BYTES) throw new RangeError('a VNC challenge is 16 bytes');
  const key = vncKey(password);
  const cipher = createCipheriv('des-ede-ecb', Buffer.concat([key, key]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(challenge), cipher.final()]);
}

export function vncChallenge(): Buffer {
  return randomBytes(VNC_CHALLENGE_BYTES);
}

/** Whether `response` answers `challenge` for `password`, compared in constant time. */
export function vncAuthMatches(challenge: Buffer, response: Buffer, password: string): boolean {
  if (response.length !== VNC_CHALLENGE_BYTES) return false;
  return timingSafeEqual(vncAuthResponse(challenge, password), response);
}

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * A random VNC password: 8 URL-safe characters (about 47 bits). The first is a letter so the
 * value never reads back from OOD's unquoted connection.yml as a number or a date.
 */
export function randomVncPassword(): string {
  const bytes = randomBytes(7);
  const first = LETTERS[(bytes[6] as number) % LETTERS.length] as string;
  return first + bytes.subarray(0, 6).toString('base64url').slice(0, 7);
}
