/**
 * One connection over an in-memory socket pair whose client-to-server direction delivers one
 * byte per chunk: the handshake and every message must survive being cut anywhere.
 */
import { createLogger, vncAuthResponse } from '@cloudlet/core';
import { Framebuffer } from './framebuffer';
import { type PixelFormat, SERVER_PIXEL_FORMAT } from './pixel-format';
import { rect } from './region';
import { AUTH_FAILED_REASON, parseVersion, RfbConnection } from './rfb-connection';
import { ByteReader, type ConnectOptions, handshake, type RfbClient, RfbAuthError, socketPair } from './testing/rfb-client';

const PASSWORD = 'pw123456';

interface Setup {
  fb: Framebuffer;
  connection: RfbConnection;
  events: unknown[];
  client: (password?: string, options?: ConnectOptions) => Promise<RfbClient>;
}

function setup(split = true, handshakeTimeoutMs = 10_000): Setup & { pair: ReturnType<typeof socketPair> } {
  const fb = new Framebuffer(64, 48);
  fb.fill(fb.bounds, 0x204060);
  fb.fill(rect(10, 10, 4, 4), 0xff0000);
  const events: unknown[] = [];
  const pair = socketPair({ toServer: split });
  const connection = new RfbConnection(1, pair[1], {
    framebuffer: fb,
    name: 'Unit TEM',
    password: PASSWORD,
    log: createLogger({ name: 't', level: 'silent' }),
    input: {
      pointer: (client, x, y, mask, previous) => events.push({ pointer: [client, x, y, mask, previous] }),
      key: (client, down, keysym) => events.push({ key: [client, down, keysym] }),
    },
    maxBufferedBytes: 1 << 20,
    handshakeTimeoutMs,
  });
  return {
    fb,
    connection,
    events,
    pair,
    client: (password = PASSWORD, options = {}) => handshake(pair[0], password, { timeoutMs: 2000, ...options }),
  };
}

describe('RFB connection, one byte at a time', () => {
  test('handshake, ServerInit, a full update, then input events', async () => {
    const { client, events, connection } = setup();
    const c = await client();
    expect(c.version).toBe('3.8');
    const init = await c.readServerInit();
    expect(init).toEqual({ width: 64, height: 48, pixelFormat: SERVER_PIXEL_FORMAT, name: 'Unit TEM' });

    c.setEncodings([0, -223]);
    c.requestUpdate(false);
    const rects = await c.readUpdate();
    expect(rects).toEqual([expect.objectContaining({ x: 0, y: 0, width: 64, height: 48, encoding: 0 })]);
    expect(c.pixel(11, 11)).toBe(0xff0000);
    expect(c.pixel(0, 0)).toBe(0x204060);

    c.pointer(12, 13, 1);
    c.pointer(12, 13, 0);
    c.key(true, 0xff52);
    c.cutText('secret clipboard');
    c.key(false, 0xff52);
    c.requestUpdate(false, 10, 10, 1, 1);
    await c.readUpdate(); // every message before this request has been handled
    expect(events).toEqual([{ pointer: [1, 12, 13, 1, 0] }, { pointer: [1, 12, 13, 0, 1] }, { key: [1, true, 0xff52] }, { key: [1, false, 0xff52] }]);
    expect(connection.stats()).toMatchObject({ phase: 'normal', messagesReceived: 8, updatesSent: 2 });
    await c.close();
  });

  test.each(['3.3', '3.7'] as const)('RFB %s clients get VNC authentication too', async (version) => {
    const { client } = setup();
    const c = await client(PASSWORD, { version });
    expect(c.version).toBe(version);
    expect((await c.readServerInit()).name).toBe('Unit TEM');
    await c.close();
  });

  test('a wrong password gets SecurityResult 1 with the reason, then the connection closes', async () => {
    const { client, pair } = setup();
    const err = await client('wrong').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RfbAuthError);
    expect((err as RfbAuthError).reason).toBe(AUTH_FAILED_REASON);
    await new Promise((resolve) => (pair[0].closed ? resolve(undefined) : pair[0].once('close', resolve)));
  });

  test('3.3 and 3.7 carry no reason string after a failure', async () => {
    for (const version of ['3.3', '3.7'] as const) {
      const { client } = setup();
      await expect(client('wrong', { version })).rejects.toMatchObject({ name: 'RfbAuthError', reason: undefined });
    }
  });

  test('an incremental request is held until something changes, then gets only the change', async () => {
    const { client, connection, fb } = setup();
    const c = await client();
    await c.readServerInit();
    c.requestUpdate(false);
    await c.readUpdate();
    c.requestUpdate(true);
    c.requestUpdate(false, 0, 0, 1, 1); // a marker: the incremental request was read before it
    expect(await c.readUpdate()).toEqual([expect.objectContaining({ x: 0, y: 0, width: 1, height: 1 })]);
    expect(connection.stats().waiting).toBe(false);

    c.requestUpdate(true);
    c.requestUpdate(true, 0, 0, 1, 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(connection.stats().waiting).toBe(true);
    fb.fill(rect(30, 20, 5, 6), 0x00ff00);
    connection.invalidate([rect(30, 20, 5, 6)]);
    expect(await c.readUpdate()).toEqual([expect.objectContaining({ x: 30, y: 20, width: 5, height: 6 })]);
    expect(c.pixel(32, 22)).toBe(0x00ff00);
    await c.close();
  });

  test('a 16 bpp client gets 16 bpp pixels', async () => {
    const { client } = setup();
    const c = await client();
    await c.readServerInit();
    const rgb565: PixelFormat = { bitsPerPixel: 16, depth: 16, bigEndian: false, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 };
    c.setPixelFormat(rgb565);
    c.requestUpdate(false, 10, 10, 2, 2);
    const [r] = await c.readUpdate();
    expect(r?.pixels.length).toBe(2 * 2 * 2);
    expect(r?.pixels.readUInt16LE(0)).toBe(0xf800);
    expect(c.pixel(10, 10)).toBe(0xff0000);
    await c.close();
  });

  test('a pixel format the server cannot serve closes the connection', async () => {
    const { client } = setup();
    const c = await client();
    await c.readServerInit();
    c.setPixelFormat({ ...SERVER_PIXEL_FORMAT, bitsPerPixel: 24 });
    await c.waitClosed(2000);
  });

  test('an unknown message type closes the connection', async () => {
    const { client } = setup();
    const c = await client();
    await c.readServerInit();
    c.write(Buffer.from([0x7f, 1, 2, 3]));
    await c.waitClosed(2000);
  });

  test('a client speaking something else than RFB 3.x is dropped', async () => {
    const { pair } = setup();
    const reader = new ByteReader(pair[0], 2000);
    expect((await reader.read(12)).toString()).toBe('RFB 003.008\n');
    pair[0].write('GET / HTTP/1.1\r\n\r\n');
    await expect(reader.read(1)).rejects.toThrow(/closed|ended/);
  });

  test('a client that does not finish the handshake in time is dropped, however it trickles', async () => {
    const { pair } = setup(true, 200);
    const [socket] = pair;
    const reader = new ByteReader(socket, 5000);
    await reader.read(12);
    socket.write('RFB 003.008\n');
    await reader.read(2);
    socket.write(Buffer.from([2]));
    await reader.read(16);
    // The 16-byte response, one byte every 20 ms: each byte is progress, but 320 ms > 200 ms.
    let sent = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed && sent < 16) socket.write(Buffer.from([sent++]));
    }, 20);
    try {
      await expect(reader.read(4)).rejects.toThrow(/closed|ended/);
      expect(sent).toBeGreaterThan(5);
      expect(sent).toBeLessThan(16);
    } finally {
      clearInterval(drip);
    }
  });

  test('messages sent right behind ClientInit, in the same chunk, are not lost', async () => {
    const { pair } = setup(false);
    const [socket] = pair;
    const reader = new ByteReader(socket, 2000);
    await reader.read(12);
    socket.write('RFB 003.008\n');
    expect([...(await reader.read(2))]).toEqual([1, 2]);
    socket.write(Buffer.from([2]));
    const response = vncAuthResponse(await reader.read(16), PASSWORD);
    const request = Buffer.from([3, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
    socket.write(Buffer.concat([response, Buffer.from([1]), request]));
    expect((await reader.read(4)).readUInt32BE(0)).toBe(0);
    const init = await reader.read(24);
    await reader.read(init.readUInt32BE(20));
    const update = await reader.read(4 + 12 + 4);
    expect(update.readUInt16BE(2)).toBe(1);
    socket.destroy();
  });
});

describe('protocol version', () => {
  test.each([
    ['RFB 003.003\n', '3.3'],
    ['RFB 003.005\n', '3.3'],
    ['RFB 003.007\n', '3.7'],
    ['RFB 003.008\n', '3.8'],
    ['RFB 003.889\n', '3.8'],
    ['RFB 004.000\n', undefined],
    ['RFB 003.002\n', undefined],
    ['RFB 3.8\n\n\n\n\n', undefined],
  ])('%j -> %s', (text, version) => {
    expect(parseVersion(text)).toBe(version);
  });
});
