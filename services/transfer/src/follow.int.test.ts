/**
 * Follow mode against a real sshd and Slurm (through it), fed by a small event server that speaks
 * the stream service's format: `GET /api/events` (SSE, `: connected` then `data: {type, movie}`
 * frames) and `GET /api/movies?state=done` (movie summaries). Not the real stream service:
 * services never import each other (@cloudlet/transfer may not depend on @cloudlet/stream), and
 * this server can drop and refuse connections on demand, which the reconnect test needs.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { waitFor } from '@cloudlet/core/testing';
import type { UserMap } from '@cloudlet/usermap';
import { createTransfer, type TransferService } from './app';
import { startTestCluster, type TestCluster } from './testing/cluster';

jest.setTimeout(120_000);

const log = createLogger({ name: 'follow-test', level: 'silent' });
let cluster: TestCluster;
let usermap: UserMap;
const services: TransferService[] = [];

interface Movie {
  id: number;
  path: string;
  state: string;
  step: null;
  reason: null;
  times: Record<string, number>;
  metrics?: { files: Record<string, string> };
}

interface FakeStream {
  url: string;
  clients: () => number;
  /** Records a movie as done; sends its `done` event to whoever is connected unless `quietly`. */
  finish(movie: Movie, quietly?: boolean): void;
  send(event: unknown): void;
  /** Cuts every connection and answers 503 until resume(). */
  drop(): void;
  resume(): void;
  stop(): Promise<void>;
}

async function startFakeStream(): Promise<FakeStream> {
  const done: Movie[] = [];
  const clients = new Set<http.ServerResponse>();
  let down = false;
  const server = http.createServer((req, res) => {
    if (down) {
      res.writeHead(503).end();
      return;
    }
    if (req.url === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(': connected\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
    } else if (req.url === '/api/movies?state=done') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(done));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const send = (event: unknown): void => {
    for (const c of clients) c.write(`data: ${JSON.stringify(event)}\n\n`);
  };
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    clients: () => clients.size,
    finish(movie, quietly = false) {
      done.push(movie);
      if (!quietly) send({ type: 'done', movie });
    },
    send,
    drop() {
      down = true;
      for (const c of clients) c.socket?.destroy();
      clients.clear();
    },
    resume() {
      down = false;
    },
    async stop() {
      for (const c of clients) c.socket?.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const COUNT = `---
description: lists the products that arrived
---
#!/bin/sh
#SBATCH --time={{time}}
ls -R {{source}} > {{dest}}/listing-{{job_id}}.txt
`;

let stream: FakeStream;
let output: string;

beforeAll(async () => {
  [cluster, stream] = await Promise.all([startTestCluster(), startFakeStream()]);
  usermap = cluster.usermap();
  output = path.join(cluster.data, 'output');
  fs.mkdirSync(output);
  fs.writeFileSync(path.join(cluster.templates, 'count.hbs'), COUNT);
}, 90_000);

afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
});

afterAll(async () => {
  await stream?.stop();
  await cluster?.stop();
});

async function start(ledger?: string): Promise<{ service: TransferService; url: string; ledger: string }> {
  const config = cluster.config({ follow: { stream_url: stream.url, output_root: output, reconnect_ms: 100 }, ...(ledger ? { ledger_file: ledger } : {}) });
  const service = createTransfer({ config, log, usermap: () => usermap });
  services.push(service);
  const { url } = await service.start();
  return { service, url, ledger: config.ledger_file };
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A finished movie's output folder as the stream's runner names it, with these files. */
function product(id: number, name: string, files: Record<string, Buffer>, metrics?: Record<string, string>): Movie {
  const folder = path.join(output, `${String(id).padStart(6, '0')}_${name.replace(/\.[^.]*$/, '')}`);
  fs.mkdirSync(folder, { recursive: true });
  for (const [rel, content] of Object.entries(files)) fs.writeFileSync(path.join(folder, rel), content);
  return { id, path: `grid1/${name}`, state: 'done', step: null, reason: null, times: { done: Date.now() }, ...(metrics ? { metrics: { files: metrics } } : {}) };
}

it('sends products as movies finish, catches up after a reconnect, and submits the rule every N arrivals', async () => {
  const first = await start();
  const dest = `${cluster.remoteRoot}/follow`;
  const bad: [Record<string, unknown>, number, RegExp][] = [
    [{ dest: '/etc' }, 403, /outside the allowed folders/],
    [{ rule: { every: 0, template: 'count' } }, 400, /invalid follow/],
    [{ rule: { every: 2, template: 'missing' } }, 400, /unknown job template "missing"/],
    [{ rule: { every: 2, template: 'count', values: { cpus: 'many' } } }, 400, /cpus/],
    [{ cluster: 'nowhere' }, 400, /unknown cluster/],
  ];
  for (const [change, status, message] of bad) {
    const res = await post(`${first.url}/api/follows`, { person: 'alice', cluster: 'hpc', dest, ...change });
    expect({ change, status: res.status }).toEqual({ change, status });
    expect(res.body.message).toMatch(message);
  }
  expect(first.service.follows.list()).toEqual([]);

  const created = await post(`${first.url}/api/follows`, { person: 'alice', cluster: 'hpc', dest, rule: { every: 2, template: 'count' } });
  expect(created.status).toBe(201);
  const fid = (created.body.follow as { id: string }).id;
  await waitFor(() => stream.clients() === 1, 10_000, 'the follower to connect');

  const m1 = product(1, 'm1.tif', { 'm1_sum.mrc': crypto.randomBytes(40_000), 'm1_ctf.png': crypto.randomBytes(5000) });
  stream.send({ type: 'step', step: 'motion', movie: { ...m1, state: 'running' } });
  stream.finish(m1);
  await waitFor(() => first.service.follows.movie(fid, 1)?.state === 'arrived', 30_000, 'movie 1 to arrive');
  for (const f of ['m1_sum.mrc', 'm1_ctf.png']) {
    const remote = path.join(dest, '000001_m1', f);
    expect(fs.readFileSync(remote)).toEqual(fs.readFileSync(path.join(output, '000001_m1', f)));
    expect(fs.statSync(remote).uid).toBe(cluster.sshd.uid);
  }
  expect(first.service.remoteStore.list({ followId: fid })).toEqual([]);

  // The stream goes away; two movies finish while nobody listens.
  stream.drop();
  const m2 = product(2, 'm2.tif', { 'm2_sum.mrc': crypto.randomBytes(30_000), 'junk.tmp': Buffer.from('not a product') }, { sum: 'm2_sum.mrc' });
  const m3 = product(3, 'm3.tif', { 'm3_sum.mrc': crypto.randomBytes(30_000) });
  stream.finish(m2, true);
  stream.finish(m3, true);
  await new Promise((resolve) => setTimeout(resolve, 300)); // some refused reconnects
  stream.resume();
  await waitFor(() => first.service.follows.movie(fid, 3)?.state === 'arrived' && first.service.follows.movie(fid, 2)?.state === 'arrived', 30_000, 'movies 2 and 3 to arrive');
  expect(first.service.follower.connections).toBeGreaterThanOrEqual(2);
  expect(fs.existsSync(path.join(dest, '000002_m2', 'm2_sum.mrc'))).toBe(true);
  expect(fs.existsSync(path.join(dest, '000002_m2', 'junk.tmp'))).toBe(false);
  // Catching up sent nothing twice.
  const m1Job = first.service.follows.movie(fid, 1)?.transferJob as string;
  expect(first.service.queue.files(m1Job).map((f) => [f.state, f.attempts])).toEqual([['verified', 1], ['verified', 1]]);

  // Two arrivals made one batch; the third waits for a fourth.
  const [batch1] = await waitFor(() => {
    const jobs = first.service.remoteStore.list({ followId: fid });
    return jobs.length === 1 && jobs[0]?.state === 'completed' && jobs;
  }, 60_000, 'the rule job to complete');
  expect(first.service.follows.get(fid)).toMatchObject({ arrived: 1, batches: 1 });
  const listing = fs.readFileSync(path.join(dest, `listing-${batch1?.id ?? ''}.txt`), 'utf8');
  expect(listing).toMatch(/m1_sum\.mrc[\s\S]*m2_sum\.mrc/);

  // A restarted service keeps the count and finds nothing new to send.
  await first.service.stop();
  services.splice(services.indexOf(first.service), 1);
  const second = await start(first.ledger);
  await waitFor(() => second.service.follower.connections === 1 && stream.clients() === 1, 10_000, 'the restarted follower to connect');
  stream.finish(product(4, 'm4.tif', { 'm4_sum.mrc': crypto.randomBytes(10_000) }));
  await waitFor(() => second.service.follows.movie(fid, 4)?.state === 'arrived', 30_000, 'movie 4 to arrive');
  const jobs = await waitFor(() => {
    const all = second.service.remoteStore.list({ followId: fid });
    return all.length === 2 && all.every((j) => j.state === 'completed') && all;
  }, 60_000, 'the second rule job to complete');
  expect(jobs[0]?.id).toBe(batch1?.id);
  expect(second.service.follows.get(fid)).toMatchObject({ arrived: 0, batches: 2, state: 'active' });
  expect(second.service.queue.files(m1Job).map((f) => f.attempts)).toEqual([1, 1]);

  const detail = (await (await fetch(`${second.url}/api/follows/${fid}`)).json()) as { movies: { movie: number; state: string }[]; remote_jobs: unknown[] };
  expect(detail.movies.map((m) => [m.movie, m.state])).toEqual([[1, 'arrived'], [2, 'arrived'], [3, 'arrived'], [4, 'arrived']]);
  expect(detail.remote_jobs).toHaveLength(2);

  // Stopped: the connection closes and later movies are not sent.
  expect((await post(`${second.url}/api/follows/${fid}/stop`, {})).body).toMatchObject({ state: 'stopped' });
  await waitFor(() => stream.clients() === 0, 10_000, 'the follower to disconnect');
  stream.finish(product(5, 'm5.tif', { 'm5_sum.mrc': Buffer.from('x') }));
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(second.service.follows.movie(fid, 5)).toBeUndefined();
  expect((await post(`${second.url}/api/follows/nope/stop`, {})).status).toBe(404);
});
