/**
 * Limits that protect the relay and the instrument: a browser that stops reading, too many
 * connections, idle connections, and the CLI's proof of identity.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import yaml from 'js-yaml';
import { vncAuthMatches, vncChallenge } from '@cloudlet/core';
import { waitFor } from '@cloudlet/core/testing';
import { ORIGIN, passwordFile, type RelayFixture, startRelay } from './testing/fixtures';
import { WsRfbClient } from './testing/ws-rfb-client';

jest.setTimeout(60_000);

/**
 * An RFB server that, once a client is in, writes framebuffer bytes as fast as the socket takes
 * them, and counts what the kernel accepted. Not a mock of a VNC server's behaviour: a firehose.
 */
function floodServer(password: string, options: { record?: Buffer[] } = {}): Promise<{ port: number; written: () => number; close(): void }> {
  let written = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const challenge = vncChallenge();
    let stage = 0;
    let buf = Buffer.alloc(0);
    socket.write('RFB 003.008\n');
    socket.on('data', (chunk: Buffer) => {
      if (stage === 4) {
        options.record?.push(chunk);
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      if (stage === 0 && buf.length >= 12) {
        buf = buf.subarray(12);
        socket.write(Buffer.from([1, 2]));
        stage = 1;
      }
      if (stage === 1 && buf.length >= 1) {
        buf = buf.subarray(1);
        socket.write(challenge);
        stage = 2;
      }
      if (stage === 2 && buf.length >= 16) {
        const ok = vncAuthMatches(challenge, buf.subarray(0, 16), password);
        buf = buf.subarray(16);
        socket.write(Buffer.from([0, 0, 0, ok ? 0 : 1]));
        stage = 3;
      }
      if (stage === 3 && buf.length >= 1) {
        stage = 4;
        const init = Buffer.alloc(24 + 5);
        init.writeUInt16BE(64, 0);
        init.writeUInt16BE(64, 2);
        init.writeUInt32BE(5, 20);
        init.write('flood', 24);
        socket.write(init);
        if (options.record) return;
        const chunk = Buffer.alloc(256 * 1024, 7);
        const pump = (): void => {
          while (!socket.destroyed && socket.write(chunk)) written += chunk.length;
          if (!socket.destroyed) {
            written += chunk.length;
            socket.once('drain', pump);
          }
        };
        pump();
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        written: () => written,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      }),
    ),
  );
}

describe('relay limits', () => {
  let fx: RelayFixture;
  let flood: Awaited<ReturnType<typeof floodServer>>;
  beforeAll(async () => {
    flood = await floodServer('flood-pw');
    fx = await startRelay({
      relay: { max_buffered_bytes: 1024 * 1024, max_connections_per_instrument: 3, idle_timeout_s: 5 },
      instruments: (dir) => [{ id: 'krios-1', name: 'Flood', vnc: { host: '127.0.0.1', port: flood.port, password_file: passwordFile(dir, 'flood-pw') } }],
    });
  });
  afterAll(async () => {
    await fx?.stop();
    flood?.close();
  });

  test('a browser that stops reading stops the relay reading the instrument (bounded memory)', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'control');
    const client = await WsRfbClient.open(`ws://127.0.0.1:${String(body.port)}/websockify`, ORIGIN);
    await client.handshake(String(body.password));
    const before = flood.written();
    // The browser stops reading: its TCP socket is paused, the kernel buffers fill.
    (client.ws as unknown as { _socket: net.Socket })._socket.pause();
    const rssBefore = process.memoryUsage().rss;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const settled = flood.written();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const pushedWhileStalled = flood.written() - settled;
    // Once the queue is full nothing more moves: the kernel buffers plus 1 MiB of relay queue.
    expect(settled - before).toBeLessThan(64 * 1024 * 1024);
    expect(pushedWhileStalled).toBeLessThan(1024 * 1024);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
    client.ws.terminate();
  });

  test('connections per instrument are capped', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'view');
    const url = `ws://127.0.0.1:${String(body.port)}/websockify`;
    const open = await Promise.all([0, 1, 2].map(() => WsRfbClient.open(url, ORIGIN)));
    await waitFor(() => fx.relay.registry.connectionsTo('krios-1') >= 3, 5000, 'three connections');
    await expect(WsRfbClient.open(url, ORIGIN)).rejects.toMatchObject({ status: 429 });
    for (const c of open) c.ws.terminate();
    await waitFor(() => fx.relay.registry.connectionsTo('krios-1') === 0, 5000, 'connections to close');
  });

  test('an idle connection is closed', async () => {
    const { body } = await fx.open('ada', 'krios-1', 'view');
    const client = await WsRfbClient.open(`ws://127.0.0.1:${String(body.port)}/websockify`, ORIGIN);
    await client.closed; // it never even answered the version
    expect(client.closeCode).toBe(4000);
  });

  test('the CLI proves who runs it with a file only that user could create', async () => {
    const config = path.join(fx.dir, 'cloudlet.yml');
    const apiPort = new URL(fx.apiUrl).port;
    fs.writeFileSync(config, yaml.dump({ relay: { api_port: Number(apiPort), challenge_dir: path.join(fx.dir, 'challenges') } }));
    const main = path.join(__dirname, 'main.js');
    // Asynchronously: the relay under test lives in this process and must keep answering.
    const spawnSync = (cmd: string, args: string[], _o: unknown): Promise<{ status: number; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
    const list = await spawnSync(process.execPath, [main, '--config', config, 'instruments', '--format', 'json'], { encoding: 'utf8' });
    expect(list.stderr).toBe('');
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ id: 'krios-1', role: 'operator' })]);
    const opened = await spawnSync(process.execPath, [main, '--config', config, 'session', 'open', '--instrument', 'krios-1', '--mode', 'control'], { encoding: 'utf8' });
    expect(opened.status).toBe(0);
    expect(opened.stdout).toMatch(/^export host='127\.0\.0\.1'\nexport port='\d+'\nexport password='[\w-]{8}'\n/);
    const id = /session_id='([^']+)'/.exec(opened.stdout)?.[1] ?? '';
    expect(fx.relay.registry.get(id)?.username).toBe('ada');
    const closed = await spawnSync(process.execPath, [main, '--config', config, 'session', 'close', id], { encoding: 'utf8' });
    expect(closed.status).toBe(0);
    expect(fx.relay.registry.get(id)).toBeUndefined();
    const bad = await spawnSync(process.execPath, [main, '--config', config, 'session', 'open', '--instrument', 'nope', '--mode', 'view'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('No instrument nope');
  });

  test('on hand-over, keys and buttons the old controller still holds are released upstream', async () => {
    const record: Buffer[] = [];
    const recorder = await floodServer('rec-pw', { record });
    const rx = await startRelay({ instruments: (dir) => [{ id: 'krios-1', name: 'Rec', vnc: { host: '127.0.0.1', port: recorder.port, password_file: passwordFile(dir, 'rec-pw') } }] });
    try {
      const a = await rx.open('ada', 'krios-1', 'control');
      const g = await rx.open('grace', 'krios-1', 'control');
      const ca = await WsRfbClient.open(`ws://127.0.0.1:${String(a.body.port)}/websockify`, ORIGIN);
      await ca.handshake(String(a.body.password));
      const cg = await WsRfbClient.open(`ws://127.0.0.1:${String(g.body.port)}/websockify`, ORIGIN);
      await cg.handshake(String(g.body.password));
      ca.key(true, 0xffe1); // Shift held down
      ca.pointer(40, 50, 1); // button 1 held down
      await waitFor(() => Buffer.concat(record).length >= 14, 5000, 'the held inputs upstream');
      record.length = 0;
      const res = await fetch(`${rx.apiUrl}/api/sessions/${String(g.body.id)}/control`, { method: 'POST', headers: { authorization: `Bearer ${rx.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'grace', action: 'take' }) });
      expect(res.status).toBe(200);
      await waitFor(() => Buffer.concat(record).length >= 14, 5000, 'the releases upstream');
      const released = Buffer.concat(record);
      expect(released.subarray(0, 8).equals(Buffer.from([4, 0, 0, 0, 0, 0, 0xff, 0xe1]))).toBe(true); // Shift up
      expect(released.subarray(8, 14).equals(Buffer.from([5, 0, 0, 40, 0, 50]))).toBe(true); // no buttons
      // And ada's input no longer goes through.
      record.length = 0;
      ca.key(true, 0x61);
      cg.key(true, 0x62);
      await waitFor(() => Buffer.concat(record).length >= 8, 5000, "grace's key");
      expect(Buffer.concat(record).readUInt32BE(4)).toBe(0x62);
    } finally {
      await rx.stop();
      recorder.close();
    }
  });
});
