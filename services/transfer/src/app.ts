/**
 * The transfer service: the durable queue, the runner, and a small HTTP API (submit, list,
 * status, re-verify, SSE progress) for the portal and the OOD transfer app. It listens on
 * loopback only by default: a request names the person it acts for, so only the portal, which
 * has signed that person in, may reach it.
 */
import fs from 'node:fs';
import http from 'node:http';
import express from 'express';
import { z } from 'zod';
import { AppError, closeServer, errorHandler, formatIssues, listen, type Logger, requestLog } from '@cloudlet/core';
import type { UserMap } from '@cloudlet/usermap';
import type { TransferConfig } from './config';
import { Follower } from './follow';
import { loadTemplates } from './job-templates';
import { JOB_STATES, type Job, Queue } from './queue';
import { remoteRoutes } from './remote-api';
import { RemoteJobs } from './remote-jobs';
import { FollowStore, RemoteJobStore } from './remote-store';
import { Transferer, type TransferEvent } from './transfer';

export interface TransferDeps {
  config: TransferConfig;
  log: Logger;
  /** The current usermap (the store's live map in production). */
  usermap: () => UserMap;
}

export interface TransferService {
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
  queue: Queue;
  transferer: Transferer;
  remoteJobs: RemoteJobs;
  remoteStore: RemoteJobStore;
  follower: Follower;
  follows: FollowStore;
}

const submitBody = z.strictObject({
  person: z.string().min(1),
  cluster: z.string().min(1),
  source: z.string().min(1),
  files: z.array(z.string().min(1)).min(1).optional(),
  dest: z.string().min(1),
});

/** The service's key must be a secret: ssh refuses a readable one too, but with a vaguer message. */
function checkKeyFiles(config: TransferConfig): void {
  const problems: string[] = [];
  for (const c of config.clusters) {
    const stat = fs.statSync(c.key_file, { throwIfNoEntry: false });
    if (!stat) problems.push(`transfer.clusters[${c.id}].key_file ${c.key_file} does not exist`);
    else if ((stat.mode & 0o077) !== 0) problems.push(`transfer.clusters[${c.id}].key_file ${c.key_file} is readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`);
    if (!fs.existsSync(c.known_hosts_file)) problems.push(`transfer.clusters[${c.id}].known_hosts_file ${c.known_hosts_file} does not exist`);
  }
  if (problems.length > 0) throw new AppError(problems.join('; '), { code: 'config_invalid' });
}

export function createTransfer(deps: TransferDeps): TransferService {
  const { config, log } = deps;
  const queue = new Queue(config.ledger_file);
  const transferer = new Transferer({ config, queue, usermap: deps.usermap, log });
  const remoteStore = new RemoteJobStore(queue.db);
  const follows = new FollowStore(queue.db);
  const remoteJobs = new RemoteJobs({ config, store: remoteStore, usermap: deps.usermap, log });
  const follower = new Follower({ config, follows, remoteStore, transferer, queue, remoteJobs, usermap: deps.usermap, log });

  const app = express();
  app.disable('x-powered-by');
  app.use(requestLog(log));
  app.use(express.json({ limit: '1mb' }));
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.post('/api/jobs', (req, res) => {
    const body = submitBody.safeParse(req.body);
    if (!body.success) throw new AppError(`invalid job: ${formatIssues(body.error).join('; ')}`, { code: 'bad_request', status: 400 });
    const { job, created } = transferer.submit(body.data);
    res.status(created ? 201 : 200).json({ created, job: view(job, queue) });
  });
  app.get('/api/jobs', (req, res) => {
    const person = typeof req.query.person === 'string' ? req.query.person : undefined;
    const state = typeof req.query.state === 'string' ? req.query.state : undefined;
    if (state !== undefined && !(JOB_STATES as readonly string[]).includes(state)) throw new AppError(`unknown state ${state}`, { code: 'bad_request', status: 400 });
    res.json(queue.jobs({ person, state: state as Job['state'] | undefined }).map((j) => view(j, queue)));
  });
  app.get('/api/jobs/:id', (req, res) => {
    const job = queue.job(req.params.id);
    if (!job) throw new AppError(`no transfer job ${req.params.id}`, { code: 'not_found', status: 404 });
    res.json({ ...view(job, queue), files: queue.files(job.id).map(({ jobId: _job, local: _local, ...f }) => f) });
  });
  app.post('/api/jobs/:id/verify', async (req, res) => {
    res.json(await transferer.reverify(req.params.id));
  });
  app.get('/api/jobs/:id/events', (req, res) => {
    const job = queue.job(req.params.id);
    if (!job) throw new AppError(`no transfer job ${req.params.id}`, { code: 'not_found', status: 404 });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(`data: ${JSON.stringify({ type: 'job', job: job.id, state: job.state, reason: job.reason, counts: queue.counts(job.id) })}\n\n`);
    const send = (event: TransferEvent): void => {
      if (event.job === job.id) res.write(`data: ${JSON.stringify(event)}\n\n`);
    };
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), 15_000);
    transferer.on('event', send);
    req.on('close', () => {
      clearInterval(heartbeat);
      transferer.off('event', send);
    });
  });
  app.use(remoteRoutes({ templatesDir: config.remote_jobs.templates_dir, remoteJobs, remoteStore, follower, follows }));
  app.use(errorHandler(log));
  const server = http.createServer(app);

  return {
    queue,
    transferer,
    remoteJobs,
    remoteStore,
    follower,
    follows,
    async start() {
      checkKeyFiles(config);
      // A broken template is reported now, like a config error, not at someone's first submission.
      const templates = loadTemplates(config.remote_jobs.templates_dir);
      if (templates.problems.length > 0) throw new AppError(templates.problems.join('; '), { code: 'config_invalid' });
      const address = await listen(server, config.listen_host, config.listen_port);
      transferer.start();
      remoteJobs.start();
      follower.start();
      const url = `http://${address.address}:${address.port}`;
      log.info({ url, clusters: config.clusters.map((c) => c.id), parallel: config.parallel }, 'transfer ready');
      return { url };
    },
    async stop() {
      await follower.stop();
      await remoteJobs.stop();
      await transferer.stop();
      await closeServer(server);
      queue.close();
    },
  };
}

function view(job: Job, queue: Queue): Record<string, unknown> {
  return { id: job.id, person: job.person, cluster: job.cluster, source: job.source, dest: job.dest, state: job.state, reason: job.reason, created_at: job.createdAt, updated_at: job.updatedAt, counts: queue.counts(job.id) };
}
