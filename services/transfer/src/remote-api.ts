/**
 * HTTP routes for remote jobs (`/api/remote-jobs`), job templates (`/api/templates`) and follow
 * sessions (`/api/follows`). Like the transfer routes, a request names the person it acts for:
 * only the portal may reach this listener.
 */
import express from 'express';
import { z } from 'zod';
import { AppError, formatIssues } from '@cloudlet/core';
import type { Follower } from './follow';
import { loadTemplates } from './job-templates';
import type { RemoteJobs } from './remote-jobs';
import type { Follow, FollowStore, RemoteJob, RemoteJobStore } from './remote-store';
import { REMOTE_STATES, type RemoteState } from './slurm-status';

export interface RemoteApiDeps {
  templatesDir: string;
  remoteJobs: RemoteJobs;
  remoteStore: RemoteJobStore;
  follower: Follower;
  follows: FollowStore;
}

const submitBody = z.strictObject({
  person: z.string().min(1),
  cluster: z.string().min(1),
  template: z.string().min(1),
  values: z.record(z.string(), z.unknown()).default({}),
  key: z.string().min(1).max(200).optional(),
});

const followBody = z.strictObject({
  person: z.string().min(1),
  cluster: z.string().min(1),
  dest: z.string().min(1),
  rule: z
    .strictObject({
      every: z.number().int().min(1).max(100_000),
      template: z.string().min(1),
      values: z.record(z.string(), z.unknown()).default({}),
    })
    .optional(),
});

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new AppError(`invalid ${what}: ${formatIssues(parsed.error).join('; ')}`, { code: 'bad_request', status: 400 });
  return parsed.data;
}

export function remoteJobView(job: RemoteJob, withScript = false): Record<string, unknown> {
  return {
    id: job.id,
    person: job.person,
    cluster: job.cluster,
    template: job.template,
    values: job.values,
    job_dir: job.jobDir,
    slurm_name: job.slurmName,
    slurm_id: job.slurmId,
    state: job.state,
    slurm_state: job.slurmState,
    state_from: job.stateFrom,
    exit_code: job.exitCode,
    reason: job.reason,
    follow: job.followId,
    created_at: job.createdAt,
    updated_at: job.updatedAt,
    ...(withScript ? { script: job.script } : {}),
  };
}

function followView(f: Follow): Record<string, unknown> {
  return { id: f.id, person: f.person, cluster: f.cluster, dest: f.dest, rule: f.rule, state: f.state, arrived: f.arrived, batches: f.batches, reason: f.reason, created_at: f.createdAt, updated_at: f.updatedAt };
}

export function remoteRoutes(deps: RemoteApiDeps): express.Router {
  const { remoteJobs, remoteStore, follower, follows } = deps;
  const router = express.Router();

  router.get('/api/templates', (_req, res) => {
    const { templates, problems } = loadTemplates(deps.templatesDir);
    res.json({ templates: templates.map((t) => ({ name: t.name, description: t.description, vars: t.vars })), problems });
  });

  router.post('/api/remote-jobs', async (req, res) => {
    const { job, created } = await remoteJobs.submit(parse(submitBody, req.body, 'remote job'));
    // 422: Slurm (or the cluster) refused it, and the record says why.
    const status = job.state === 'rejected' || job.state === 'failed' ? 422 : job.state === 'blocked' ? 409 : job.state === 'submitting' ? 202 : created ? 201 : 200;
    res.status(status).json({ created, job: remoteJobView(job) });
  });
  router.get('/api/remote-jobs', (req, res) => {
    const person = typeof req.query.person === 'string' ? req.query.person : undefined;
    const state = typeof req.query.state === 'string' ? req.query.state : undefined;
    if (state !== undefined && !(REMOTE_STATES as readonly string[]).includes(state)) throw new AppError(`unknown state ${state}`, { code: 'bad_request', status: 400 });
    res.json(remoteStore.list({ person, states: state ? [state as RemoteState] : undefined }).map((j) => remoteJobView(j)));
  });
  router.get('/api/remote-jobs/:id', (req, res) => {
    const job = remoteStore.get(req.params.id);
    if (!job) throw new AppError(`no remote job ${req.params.id}`, { code: 'not_found', status: 404 });
    res.json(remoteJobView(job, true));
  });
  router.post('/api/remote-jobs/:id/cancel', async (req, res) => {
    res.json(remoteJobView(await remoteJobs.cancel(req.params.id)));
  });

  router.post('/api/follows', (req, res) => {
    const { follow, created } = follower.create(parse(followBody, req.body, 'follow'));
    res.status(created ? 201 : 200).json({ created, follow: followView(follow) });
  });
  router.get('/api/follows', (_req, res) => {
    res.json(follows.list().map(followView));
  });
  router.get('/api/follows/:id', (req, res) => {
    const follow = follows.get(req.params.id);
    if (!follow) throw new AppError(`no follow ${req.params.id}`, { code: 'not_found', status: 404 });
    res.json({
      ...followView(follow),
      movies: follows.movies(follow.id).map((m) => ({ movie: m.movieId, source: m.source, transfer_job: m.transferJob, state: m.state, reason: m.reason })),
      remote_jobs: remoteStore.list({ followId: follow.id }).map((j) => remoteJobView(j)),
    });
  });
  router.post('/api/follows/:id/stop', (req, res) => {
    res.json(followView(follower.setState(req.params.id, 'stopped')));
  });
  router.post('/api/follows/:id/start', (req, res) => {
    res.json(followView(follower.setState(req.params.id, 'active')));
  });
  return router;
}
