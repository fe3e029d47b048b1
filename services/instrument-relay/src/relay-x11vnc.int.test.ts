/**
 * The relay against a real VNC server (x11vnc on Xvfb, with a VNC password), spoken to by a
 * raw WebSocket client the way noVNC speaks. One test per way a connection must be refused.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { waitFor } from '@cloudlet/core/testing';
import { auditLines, freePort, ORIGIN, passwordFile, type RelayFixture, startRelay, startX11vnc, type VncServer } from './testing/fixtures';
import { WsRfbClient } from './testing/ws-rfb-client';

jest.setTimeout(60_000);

const VNC_PASSWORD = 'Inst-Pw1';

describe('relay to x11vnc', () => {
  let vnc: VncServer;
  let fx: RelayFixture;
  let downPort: number;
  beforeAll(async () => {
    vnc = await startX11vnc(VNC_PASSWORD);
    downPort = await freePort();
    fx = await startRelay({
      instruments: (dir) => {
        const good = passwordFile(dir, VNC_PASSWORD);
        return [
          { id: 'krios-1', name: 'Krios', vnc: { host: '127.0.0.1', port: vnc.port, password_file: good } },
          { id: 'booked', name: 'Booked scope', booking_required: true, bookings: [{ person: 'ada', start: '2099-01-01T09:00:00Z', end: '2099-01-01T17:00:00Z' }], vnc: { host: '127.0.0.1', port: vnc.port, password_file: good } },
          { id: 'wrong-pw', name: 'Misconfigured', vnc: { host: '127.0.0.1', port: vnc.port, password_file: passwordFile(dir, 'nope-nope') } },
          { id: 'down', name: 'Switched off', vnc: { host: '127.0.0.1', port: downPort, password_file: good } },
        ];
      },
    });
  });
  afterAll(async () => {
    await fx?.stop();
    await vnc?.stop();
  });

  const url = (session: Record<string, unknown>): string => `ws://127.0.0.1:${String(session.port)}/websockify`;

  test('an operator connects with the control secret and gets the real desktop', async () => {
    const { status, body } = await fx.open('ada', 'krios-1', 'control');
    expect(status).toBe(201);
    expect(body).toMatchObject({ role: 'operator', mode: 'control', websocket_path: 'websockify' });
    expect(String(body.password)).toMatch(/^[\w-]{8}$/);
    expect(JSON.stringify(body)).not.toContain(VNC_PASSWORD);
    const client = await WsRfbClient.open(url(body), ORIGIN);
    expect(client.ws.protocol).toBe('binary');
    const init = await client.handshake(String(body.password));
    expect(init).toMatchObject({ width: 800, height: 600 });
    client.setEncodings([0]);
    client.requestUpdate(false, init.width, init.height);
    const fb = { width: init.width, data: Buffer.alloc(init.width * init.height * 4) };
    const rects = await client.readUpdate(fb);
    expect(rects.reduce((n, r) => n + r.w * r.h, 0)).toBeGreaterThanOrEqual(800 * 600);
    client.close();
    await client.closed;
    await waitFor(() => auditLines(fx.auditFile).some((l) => l.event === 'disconnect' && l.session === body.id), 5000, 'audit');
    const events = auditLines(fx.auditFile).filter((l) => l.session === body.id);
    expect(events.map((e) => e.event)).toEqual(['connect', 'disconnect']);
    expect(events[0]).toMatchObject({ user: 'ada', instrument: 'krios-1', role: 'control' });
    expect(Number(events[1]?.bytes_down)).toBeGreaterThan(800 * 600 * 4);
    expect(fs.readFileSync(fx.auditFile, 'utf8')).not.toContain(String(body.password));
  });

  test('the view secret admits a viewer; the instrument password never crosses the wire', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'control');
    const client = await WsRfbClient.open(url(body), ORIGIN);
    const frames: Buffer[] = [];
    client.ws.on('message', (d: Buffer) => frames.push(d));
    await client.handshake(String(body.view_password));
    client.close();
    await client.closed;
    expect(Buffer.concat(frames).includes(Buffer.from(VNC_PASSWORD))).toBe(false);
    expect(auditLines(fx.auditFile).find((l) => l.event === 'connect' && l.session === body.id)).toMatchObject({ role: 'view' });
  });

  test('a wrong secret gets "Authentication failed" and no upstream connection', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'control');
    const client = await WsRfbClient.open(url(body), ORIGIN);
    await expect(client.handshake('guessed!')).rejects.toThrow('Authentication failed');
    await client.closed;
    expect(auditLines(fx.auditFile).some((l) => l.event === 'auth_failed' && l.session === body.id)).toBe(true);
  });

  test('a wrong or missing Origin is refused before the WebSocket opens', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'control');
    await expect(WsRfbClient.open(url(body), 'https://evil.example')).rejects.toMatchObject({ status: 403 });
    await expect(WsRfbClient.open(url(body), undefined)).rejects.toMatchObject({ status: 403 });
    await expect(WsRfbClient.open(`ws://127.0.0.1:${String(body.port)}/other`, ORIGIN)).rejects.toMatchObject({ status: 404 });
  });

  test('a closed (expired) session refuses new connections and drops open ones', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'control');
    const client = await WsRfbClient.open(url(body), ORIGIN);
    await client.handshake(String(body.password));
    await fx.relay.registry.close(String(body.id), 'session expired');
    await client.closed;
    expect(client.closeCode).toBe(4001);
    await expect(WsRfbClient.open(url(body), ORIGIN)).rejects.toThrow();
  });

  test('malformed RFB from the browser closes the connection', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'control');
    const client = await WsRfbClient.open(url(body), ORIGIN);
    await client.handshake(String(body.password));
    client.send(Buffer.from([99, 1, 2, 3]));
    await client.closed;
    expect(client.closeCode).toBe(4002);
  });

  test('a text frame or an oversized frame closes the connection', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'control');
    const a = await WsRfbClient.open(url(body), ORIGIN);
    a.ws.send('RFB 003.008\n');
    await a.closed;
    expect(a.closeCode).toBe(4002);
    const b = await WsRfbClient.open(url(body), ORIGIN);
    await b.handshake(String(body.password));
    b.send(Buffer.alloc(2 * 1024 * 1024));
    await b.closed;
    expect(b.closeCode).toBe(1009);
  });

  test('no role, viewer asking for control, and outside the booking: refused with a reason', async () => {
    expect(await fx.open('bob', 'krios-1', 'view')).toMatchObject({ status: 403, body: { message: expect.stringContaining('no role') as unknown } });
    expect(await fx.open('rosalind', 'krios-1', 'control')).toMatchObject({ status: 403, body: { error: 'viewer_only' } });
    const viewer = await fx.open('rosalind', 'krios-1', 'view');
    expect(viewer.status).toBe(201);
    expect(viewer.body.password).toBe('');
    const booked = await fx.open('ada', 'booked', 'control');
    expect(booked.status).toBe(403);
    expect(booked.body.message).toContain('2099-01-01T09:00:00.000Z');
  });

  test('an instrument that is down gives the browser a reason; the relay keeps serving', async () => {
    const { body } = await fx.open('ada', 'down', 'control');
    const client = await WsRfbClient.open(url(body), ORIGIN);
    await expect(client.handshake(String(body.password))).rejects.toThrow(/cannot be reached|closed|did not answer/);
    // It comes up on that port: the next connection works.
    const server = net.createServer((s) => s.end('RFB 003.008\n'));
    await new Promise<void>((resolve) => server.listen(downPort, '127.0.0.1', resolve));
    const again = await WsRfbClient.open(url(body), ORIGIN);
    await expect(again.handshake(String(body.password))).rejects.toThrow(/closed/);
    server.close();
  });

  test('a wrong instrument password fails once, then the relay stops trying (no retry storm)', async () => {
    const { body } = await fx.open('ada', 'wrong-pw', 'control');
    const first = await WsRfbClient.open(url(body), ORIGIN);
    await expect(first.handshake(String(body.password))).rejects.toThrow('could not sign in to the instrument');
    const second = await WsRfbClient.open(url(body), ORIGIN);
    await expect(second.handshake(String(body.password))).rejects.toThrow('cannot sign in to the instrument right now');
    const refusals = auditLines(fx.auditFile).filter((l) => l.event === 'refused' && l.session === body.id).map((l) => l.reason);
    expect(refusals).toEqual(['upstream_auth_failed', 'upstream_blocked']);
  });

  test('a viewer sending input moves nothing; the controller moves the real X pointer', async () => {
    const mouse = (): string => execFileSync('xdotool', ['getmouselocation'], { env: { ...process.env, DISPLAY: vnc.display }, encoding: 'utf8' });
    const { body } = await fx.open('ada', 'krios-1', 'control');
    const viewer = await WsRfbClient.open(url(body), ORIGIN);
    await viewer.handshake(String(body.view_password));
    const controller = await WsRfbClient.open(url(body), ORIGIN);
    await controller.handshake(String(body.password));
    controller.pointer(123, 45, 0);
    await waitFor(() => mouse().startsWith('x:123 y:45 '), 10_000, 'the controller to move the pointer');
    viewer.pointer(600, 400, 0);
    viewer.key(true, 0xff0d);
    viewer.key(false, 0xff0d);
    viewer.requestUpdate(true, 800, 600); // still allowed: watching is what viewers do
    await new Promise((resolve) => setTimeout(resolve, 1000)); // a grace period for the negative
    expect(mouse().startsWith('x:123 y:45 ')).toBe(true);
    viewer.close();
    controller.close();
    await viewer.closed;
    await waitFor(() => auditLines(fx.auditFile).some((l) => l.event === 'disconnect' && l.session === body.id && l.role === 'view'), 5000, 'audit');
    expect(auditLines(fx.auditFile).find((l) => l.event === 'disconnect' && l.session === body.id && l.role === 'view')).toMatchObject({ dropped_input: 3 });
  });

  test('a role withdrawn after the session opened refuses the next connection', async () => {
    const { body } = await fx.open('grace', 'krios-1', 'control');
    expect(body.role).toBe('operator');
    const usermap = `${fx.dir}/usermap.yml`;
    fs.writeFileSync(usermap, fs.readFileSync(usermap, 'utf8').replace("instruments:\n      krios-1: operator\n  - id: bob", 'instruments: {}\n  - id: bob'));
    await waitFor(
      () =>
        WsRfbClient.open(url(body), ORIGIN).then(
          (c) => {
            c.ws.terminate();
            return false;
          },
          (err: { status?: number }) => err.status === 403,
        ),
      10_000,
      'the relay to see the withdrawn role',
    );
  });

  test('the session API wants its token', async () => {
    const res = await fetch(`${fx.apiUrl}/api/sessions`, { method: 'POST', headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' }, body: '{"username":"ada","instrument":"krios-1","mode":"control"}' });
    expect(res.status).toBe(401);
    expect((await fetch(`${fx.apiUrl}/api/instruments?username=ada`)).status).toBe(401);
  });
});
