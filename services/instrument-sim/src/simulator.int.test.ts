/** The simulator on loopback: real TCP, a raw RFB client, the HTTP API. */
import net from 'node:net';
import { waitFor } from '@cloudlet/core/testing';
import { Keysym } from './input';
import { COLOURS } from './panel';
import { contains, type Rect } from './region';
import { SERVER_PIXEL_FORMAT } from './pixel-format';
import { followEvents, type SimFixture, startSimulator, TEST_PASSWORD } from './testing/harness';
import { connect, type RfbClient, RfbAuthError } from './testing/rfb-client';

jest.setTimeout(30_000);

let f: SimFixture;
const clients: RfbClient[] = [];

async function client(options: { shared?: boolean } = {}): Promise<RfbClient> {
  const c = await connect('127.0.0.1', f.vncPort, TEST_PASSWORD, options);
  clients.push(c);
  await c.readServerInit();
  c.requestUpdate(false);
  await c.readUpdate();
  return c;
}

/** A pixel inside the button, clear of its label. */
function inset(r: Rect): [number, number] {
  return [r.x + 3, r.y + 3];
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await f.stop();
});

describe('VNC', () => {
  beforeEach(async () => {
    f = await startSimulator();
  });

  test('a client authenticates, reads ServerInit, and sees exactly the panel', async () => {
    const c = await connect('127.0.0.1', f.vncPort, TEST_PASSWORD);
    clients.push(c);
    expect(await c.readServerInit()).toEqual({ width: 1024, height: 768, pixelFormat: SERVER_PIXEL_FORMAT, name: 'Cloudlet simulated TEM' });
    c.requestUpdate(false);
    expect(await c.readUpdate()).toEqual([expect.objectContaining({ x: 0, y: 0, width: 1024, height: 768, encoding: 0 })]);
    const layout = f.sim.panel.layout;
    expect(c.pixel(...inset(layout.valves))).toBe(COLOURS.valvesClosed);
    expect(c.pixel(...inset(layout.acquire))).toBe(COLOURS.acquire);
    expect(c.pixel(2, 2)).toBe(COLOURS.titleBar);
    expect(c.framebuffer?.equals(f.sim.panel.framebuffer.data)).toBe(true);
  });

  test('clicking the valves toggle, then ACQUIRE, changes the state and sends only what changed', async () => {
    const c = await client();
    const layout = f.sim.panel.layout;

    c.requestUpdate(true);
    await waitFor(async () => (await f.getJson<{ vnc: { waiting_requests: number } }>('/healthz')).vnc.waiting_requests === 1, 5000, 'the incremental request to be held');
    c.click(...f.point('valves'));
    const first = await c.readUpdate();
    expect(first.some((r) => contains(r, layout.valves))).toBe(true);
    expect(first.every((r) => r.width * r.height < 1024 * 768 / 2)).toBe(true);
    expect(c.pixel(...inset(layout.valves))).toBe(COLOURS.valvesOpen);
    expect(await f.state()).toMatchObject({ column_valves_open: true, acquiring: false });

    c.requestUpdate(true);
    c.click(...f.point('acquire'));
    await c.readUpdate();
    expect(c.pixel(...inset(layout.acquire))).toBe(COLOURS.stop);
    expect(await f.state()).toMatchObject({ column_valves_open: true, acquiring: true });

    // Exposures tick (every 50 ms here) and the counter on screen follows.
    c.requestUpdate(true);
    const rects = await c.readUpdate();
    expect(rects.some((r) => contains(r, layout.exposures))).toBe(true);
    expect(c.framebuffer?.equals(f.sim.panel.framebuffer.data)).toBe(true);
  });

  test('ACQUIRE with the valves closed is refused, and the status line says why', async () => {
    const c = await client();
    c.requestUpdate(true);
    c.click(...f.point('acquire'));
    const rects = await c.readUpdate();
    expect(rects.some((r) => contains(r, f.sim.panel.layout.status))).toBe(true);
    expect(await f.state()).toMatchObject({ acquiring: false, status: 'Column valves closed: open them to acquire' });
    expect(c.pixel(...inset(f.sim.panel.layout.acquire))).toBe(COLOURS.acquire);
  });

  test('keys drive the stage, defocus and magnification', async () => {
    const c = await client();
    c.press(Keysym.Right);
    c.press(Keysym.Right);
    c.press(Keysym.Down);
    c.press(Keysym.PageUp);
    c.press(Keysym.Plus);
    const s = await waitFor(async () => {
      const state = await f.state();
      return state.seq >= 5 ? state : undefined;
    });
    expect(s).toMatchObject({ stage_x_um: 20, stage_y_um: -10, defocus_um: -1.4, magnification: 96000 });
  });

  test('a wrong password gets SecurityResult 1 with a reason, and the connection closes', async () => {
    const err = await connect('127.0.0.1', f.vncPort, 'wrong-pw').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RfbAuthError);
    expect((err as RfbAuthError).reason).toBe('Authentication failed');
    await waitFor(() => f.sim.vncStats().clients === 0, 5000, 'the refused connection to close');
  });

  test('an unknown message type closes the connection; the others stay', async () => {
    const bystander = await client();
    const c = await client();
    c.write(Buffer.from([0xfa, 0, 0, 0]));
    await c.waitClosed();
    bystander.requestUpdate(false, 0, 0, 1, 1);
    expect(await bystander.readUpdate()).toHaveLength(1);
  });

  test('garbage instead of a version string closes the connection', async () => {
    const socket = net.connect(f.vncPort, '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      let got = '';
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.on('close', () => resolve(got));
    });
    socket.write('HELLO THERE!\n\n\n');
    expect(await closed).toBe('RFB 003.008\n');
  });

  test('several clients at once, shared or not, all see a change', async () => {
    const a = await client({ shared: false });
    const b = await client({ shared: true });
    const c = await client({ shared: false });
    expect(f.sim.vncStats().clients).toBe(3);
    for (const k of [a, b, c]) k.requestUpdate(true);
    b.click(...f.point('valves'));
    for (const k of [a, b, c]) {
      await k.readUpdate();
      expect(k.pixel(...inset(f.sim.panel.layout.valves))).toBe(COLOURS.valvesOpen);
    }
  });
});

describe('a client that stops reading', () => {
  const MAX_BUFFERED = 64 * 1024;

  beforeEach(async () => {
    f = await startSimulator({ maxBufferedBytes: MAX_BUFFERED });
  });

  test('holds at most one update plus the limit, however much it asks for or the screen changes', async () => {
    const c = await client();
    c.socket.pause();
    const frameBytes = 1024 * 768 * 4;
    for (let i = 0; i < 200; i++) {
      c.requestUpdate(false);
      f.sim.state.moveStage(i % 2 === 0 ? 10 : -10, 0);
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve)); // let the panel redraw
    }
    // 2 messages from the setup, then the 200 requests: all read by the server.
    await waitFor(() => f.sim.vncStats().messagesReceived >= 201, 10_000, 'the server to read every request');
    const stats = f.sim.vncStats();
    expect(stats.bufferedBytes).toBeLessThanOrEqual(MAX_BUFFERED + frameBytes + 1024);
    expect(stats.updatesSent).toBeLessThan(20);
    expect(stats.waitingRequests).toBe(1);

    // Reading again, it catches up with the latest screen, not with every frame it missed.
    c.socket.resume();
    let updates = 0;
    while (!c.framebuffer?.equals(f.sim.panel.framebuffer.data)) {
      await c.readUpdate();
      updates++;
    }
    expect(updates).toBeLessThan(20);
  });
});

describe('state API', () => {
  beforeEach(async () => {
    f = await startSimulator({ heartbeatMs: 50 });
  });

  test('/state and /healthz answer JSON; nothing else is served, and nothing can be changed', async () => {
    expect(await f.state()).toMatchObject({ seq: 0, column_valves_open: false, acquiring: false, status: 'Ready' });
    expect(await f.getJson('/healthz')).toMatchObject({ ok: true, vnc: { clients: 0 } });
    for (const [method, urlPath] of [
      ['POST', '/state'],
      ['PUT', '/state'],
      ['GET', '/nope'],
    ]) {
      expect((await fetch(`${f.api}${urlPath as string}`, { method })).status).toBe(404);
    }
    expect((await f.state()).seq).toBe(0);
  });

  test('/events sends the snapshot at once, then every change, with heartbeats in between', async () => {
    const events = await followEvents(`${f.api}/events`);
    try {
      expect(await events.next((s) => s.seq === 0)).toMatchObject({ column_valves_open: false });
      f.sim.state.setValves(true);
      f.sim.state.startAcquiring();
      expect(await events.next((s) => s.exposures >= 2)).toMatchObject({ acquiring: true, column_valves_open: true });
      await waitFor(() => events.comments.length > 0, 5000, 'a heartbeat');
      expect(events.comments[0]).toBe(': heartbeat');
      expect((await f.getJson<{ event_subscribers: number }>('/healthz')).event_subscribers).toBe(1);
    } finally {
      events.close();
    }
    await waitFor(async () => (await f.getJson<{ event_subscribers: number }>('/healthz')).event_subscribers === 0, 5000, 'the stream to be dropped');
  });

  test('many followers share one state listener, and each gets every change', async () => {
    const followers = await Promise.all(Array.from({ length: 15 }, () => followEvents(`${f.api}/events`)));
    try {
      await Promise.all(followers.map((e) => e.next((s) => s.seq === 0)));
      expect(f.sim.state.listenerCount('change')).toBe(2); // the panel's and the API's
      f.sim.state.moveStage(10, 0);
      const seen = await Promise.all(followers.map((e) => e.next((s) => s.seq === 1)));
      expect(seen.every((s) => s.stage_x_um === 10)).toBe(true);
    } finally {
      for (const e of followers) e.close();
    }
    await waitFor(() => f.sim.state.listenerCount('change') === 1, 5000, 'the API to stop listening');
  });

  test('stop() ends event streams and closes both ports', async () => {
    const events = await followEvents(`${f.api}/events`);
    await events.next(() => true);
    await f.stop();
    await expect(fetch(`${f.api}/state`)).rejects.toThrow();
    await expect(connect('127.0.0.1', f.vncPort, TEST_PASSWORD)).rejects.toThrow(/ECONNREFUSED/);
    events.close();
  });
});
