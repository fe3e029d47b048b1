/** The event-stream client against a real HTTP server on loopback that goes silent or drops. */
import http from 'node:http';
import { createLogger } from '@cloudlet/core';
import { waitFor } from '@cloudlet/core/testing';
import { SseClient, type SseEvent } from './sse';

const log = createLogger({ name: 'sse-test', level: 'silent' });

it('reconnects when the server goes silent or drops, and says so each time', async () => {
  let requests = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    requests += 1;
    sockets.add(req.socket);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // First connection: one event, then silence (no heartbeats). Later ones: an event each.
    res.write(`: connected\n\ndata: {"n":${requests}}\n\n`);
    if (requests === 2) setTimeout(() => req.socket.destroy(), 50);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const events: SseEvent[] = [];
  let opened = 0;
  const client = new SseClient({
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/api/events`,
    reconnectMs: 20,
    idleMs: 300,
    log,
    onOpen: () => {
      opened += 1;
    },
    onEvent: (e) => events.push(e),
  });
  try {
    client.start();
    await waitFor(() => client.connections >= 3, 10_000, 'three connections');
    expect(opened).toBeGreaterThanOrEqual(3);
    expect(events.slice(0, 3).map((e) => e.data)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
  } finally {
    await client.stop();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
  const after = client.connections;
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(client.connections).toBe(after);
});
