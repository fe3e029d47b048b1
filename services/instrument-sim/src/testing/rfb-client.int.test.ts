/**
 * The test client against a real VNC server: x11vnc on Xvfb, with a VNC password file, the
 * pair the relay's tests use as "the instrument PC". If the client agrees with x11vnc and with
 * the simulator, the simulator agrees with x11vnc.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { type RunningProcess, startProcess, tempDir, waitFor } from '@cloudlet/core/testing';
import { connect, RfbAuthError } from './rfb-client';

jest.setTimeout(30_000);

const PASSWORD = 'x11-pw12';
const BACKGROUND = 0x3366cc;
let xvfb: RunningProcess;
let x11vnc: RunningProcess;
let port: number;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const p = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(p));
    });
  });
}

/** The first output line matching `re`; fails early if the process exits first. */
function line(proc: RunningProcess, re: RegExp, what: string): Promise<RegExpExecArray> {
  return waitFor(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`${what} exited: ${proc.lines.slice(-10).join('\n')}`);
      for (const l of proc.lines) {
        const m = re.exec(l);
        if (m) return m;
      }
      return undefined;
    },
    15_000,
    what,
  );
}

beforeAll(async () => {
  const dir = tempDir('cloudlet-x11vnc-');
  const passwordFile = path.join(dir, 'passwd');
  execFileSync('x11vnc', ['-storepasswd', PASSWORD, passwordFile], { stdio: 'ignore' });
  xvfb = startProcess('Xvfb', ['-displayfd', '1', '-screen', '0', '320x240x24', '-nolisten', 'tcp']);
  const display = (await line(xvfb, /^(\d+)$/, 'Xvfb to report its display'))[1] as string;
  port = await freePort();
  x11vnc = startProcess('x11vnc', ['-display', `:${display}`, '-rfbauth', passwordFile, '-rfbport', String(port), '-localhost', '-forever', '-shared', '-noxdamage', '-solid', '#3366cc']);
  await line(x11vnc, new RegExp(`^PORT=${port}$`), 'x11vnc to listen');
});

afterAll(async () => {
  // SIGKILL: x11vnc's SIGTERM handler can deadlock (it is not async-signal-safe), and a test
  // run must not hang on it. It keeps no state worth a clean exit.
  await x11vnc?.stop('SIGKILL');
  await xvfb?.stop();
});

describe('the RFB test client against x11vnc', () => {
  test.each(['3.8', '3.7', '3.3'] as const)('speaks RFB %s: handshake, ServerInit, a Raw update with the right pixels', async (version) => {
    const c = await connect('127.0.0.1', port, PASSWORD, { version });
    try {
      expect(c.version).toBe(version);
      const init = await c.readServerInit();
      expect(init).toMatchObject({ width: 320, height: 240, pixelFormat: { bitsPerPixel: 32, trueColour: true } });
      c.requestUpdate(false);
      const rects = await c.readUpdate();
      expect(rects.reduce((sum, r) => sum + r.width * r.height, 0)).toBeGreaterThanOrEqual(320 * 240);
      expect(c.pixel(10, 10)).toBe(BACKGROUND);
      expect(c.pixel(319, 239)).toBe(BACKGROUND);
    } finally {
      await c.close();
    }
  });

  test('reads 16 bpp updates after SetPixelFormat, and keeps working after input', async () => {
    const c = await connect('127.0.0.1', port, PASSWORD);
    try {
      await c.readServerInit();
      c.setPixelFormat({ bitsPerPixel: 16, depth: 16, bigEndian: false, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 });
      c.setEncodings([0]);
      c.pointer(100, 100, 0);
      c.press(0xffe1); // Shift: harmless on an empty desktop
      c.requestUpdate(false, 0, 0, 40, 30);
      const rects = await c.readUpdate();
      expect(rects.every((r) => r.encoding === 0 && r.pixels.length === r.width * r.height * 2)).toBe(true);
      const got = c.pixel(5, 5);
      for (const shift of [16, 8, 0]) expect(Math.abs(((got >> shift) & 0xff) - ((BACKGROUND >> shift) & 0xff))).toBeLessThanOrEqual(8);
    } finally {
      await c.close();
    }
  });

  // Last: libvncserver may hold a failed source back for a while.
  test('a wrong password is an RfbAuthError carrying the server reason', async () => {
    const err = await connect('127.0.0.1', port, 'wrong-pw').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RfbAuthError);
    expect((err as RfbAuthError).reason).toMatch(/password|auth/i);
  });
});
