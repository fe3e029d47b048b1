import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomVncPassword, vncAuthMatches, vncAuthResponse, vncChallenge } from './rfb-auth';

describe('VNC authentication', () => {
  test('matches the DES reference vector with the bit-reversed key', () => {
    // FIPS 81 single-DES vector: key 0123456789ABCDEF, plaintext "Now is t" -> 3FA40E8A984D4815.
    // VNC reverses each key byte's bits first, so the password whose reversed bytes are that key:
    const password = Buffer.from([0x80, 0xc4, 0xa2, 0xe6, 0x91, 0xd5, 0xb3, 0xf7]).toString('latin1');
    const challenge = Buffer.concat([Buffer.from('Now is t'), Buffer.from('Now is t')]);
    expect(vncAuthResponse(challenge, password).toString('hex')).toBe('3fa40e8a984d48153fa40e8a984d4815');
  });

  test("agrees with x11vnc's password file (the password DES-encrypted under VNC's fixed key)", () => {
    // vncpasswd files hold d3des(password) under the fixed key 23 82 107 6 35 78 88 7. d3des keys
    // are in VNC's bit order, so that key goes in exactly where a VNC password would.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vncpw-'));
    const file = path.join(dir, 'passwd');
    execFileSync('x11vnc', ['-storepasswd', 'secret12', file], { stdio: 'ignore' });
    const stored = fs.readFileSync(file);
    const fixedKey = Buffer.from([23, 82, 107, 6, 35, 78, 88, 7]).toString('latin1');
    const padded = Buffer.alloc(16);
    Buffer.from('secret12').copy(padded);
    expect(vncAuthResponse(padded, fixedKey).subarray(0, 8).toString('hex')).toBe(stored.subarray(0, 8).toString('hex'));
  });

  test('only the first 8 bytes of a password count, as in every VNC server', () => {
    const c = vncChallenge();
    expect(vncAuthMatches(c, vncAuthResponse(c, 'abcdefgh'), 'abcdefghIGNORED')).toBe(true);
    expect(vncAuthMatches(c, vncAuthResponse(c, 'abcdefgh'), 'abcdefgX')).toBe(false);
    expect(vncAuthMatches(c, Buffer.alloc(15), 'abcdefgh')).toBe(false);
  });

  test('random passwords are 8 URL-safe characters starting with a letter, and differ', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const p = randomVncPassword();
      expect(p).toMatch(/^[A-Za-z][A-Za-z0-9_-]{7}$/);
      seen.add(p);
    }
    expect(seen.size).toBe(2000);
  });
});
