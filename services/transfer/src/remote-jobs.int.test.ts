/**
 * Remote Slurm jobs against a real sshd and a real Slurm reached only through it: sbatch, squeue,
 * sacct and scancel run as the remote user cloudlet-remote (uid 3100), whose job writes files on
 * the "cluster" side.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@cloudlet/core';
import { waitFor } from '@cloudlet/core/testing';
import type { UserMap } from '@cloudlet/usermap';
import { createTransfer, type TransferService } from './app';
import { Queue } from './queue';
import type { RemoteJobEvent } from './remote-jobs';
import type { RemoteJob } from './remote-store';
import { startTestCluster, type TestCluster } from './testing/cluster';

jest.setTimeout(120_000);

const log = createLogger({ name: 'remote-jobs-test', level: 'silent' });
let cluster: TestCluster;
let usermap: UserMap;
const services: TransferService[] = [];

const HELLO = `---
description: writes who ran it and a label, then sleeps
vars:
  label: { kind: text, default: hello }
  seconds: { kind: integer, min: 0, max: 600, default: 1 }
  partition: { kind: word, default: test }
defaults: { time: "5:00" }
---
#!/bin/sh
#SBATCH --partition={{partition}}
#SBATCH --cpus-per-task={{cpus}}
#SBATCH --time={{time}}
mkdir -p {{dest}}
id -u > {{dest}}/uid.txt
printf '%s' {{label}} > {{dest}}/label.txt
sleep {{seconds}}
`;

beforeAll(async () => {
  cluster = await startTestCluster();
  usermap = cluster.usermap();
  fs.writeFileSync(path.join(cluster.templates, 'hello.hbs'), HELLO);
}, 90_000);

afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
});

afterAll(async () => {
  await cluster?.stop();
});

async function start(overrides: Record<string, unknown> = {}): Promise<{ service: TransferService; url: string; ledger: string }> {
  const config = cluster.config(overrides);
  const service = createTransfer({ config, log, usermap: () => usermap });
  services.push(service);
  const { url } = await service.start();
  return { service, url, ledger: config.ledger_file };
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function jobOf(res: { body: Record<string, unknown> }): { id: string; state: string; slurm_id: string | null; reason: string | null; job_dir: string } {
  return res.body.job as { id: string; state: string; slurm_id: string | null; reason: string | null; job_dir: string };
}

async function state(service: TransferService, id: string, wanted: readonly string[], timeoutMs = 60_000): Promise<RemoteJob> {
  return waitFor(() => {
    const job = service.remoteStore.get(id);
    return job && wanted.includes(job.state) && job;
  }, timeoutMs, `remote job ${id} to be ${wanted.join(' or ')}`);
}

it('submits a rendered template as the remote user and follows it through squeue, then sacct', async () => {
  const { service, url } = await start();
  const events: RemoteJobEvent[] = [];
  service.remoteJobs.on('event', (e: RemoteJobEvent) => events.push(e));
  const dest = `${cluster.remoteRoot}/hello`;
  // Where uid 3100 could write if the label ever reached the shell as code.
  const marker = path.join(os.tmpdir(), `cloudlet-pwned-${crypto.randomBytes(4).toString('hex')}`);
  const label = `$(touch ${marker}) \`touch ${marker}\` '; touch ${marker}; ' "x"`;

  const res = await post(`${url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc', template: 'hello', values: { dest, label, seconds: 2 } });
  expect(res.status).toBe(201);
  const submitted = jobOf(res);
  expect(submitted).toMatchObject({ state: 'pending', reason: null });
  expect(submitted.slurm_id).toMatch(/^\d+$/);

  const done = await state(service, submitted.id, ['completed', 'failed', 'cancelled', 'timeout', 'unknown']);
  expect(done).toMatchObject({ state: 'completed', slurmState: 'COMPLETED', stateFrom: 'sacct', exitCode: '0:0', slurmId: submitted.slurm_id, slurmName: `cloudlet-${submitted.id}` });
  // Seen queued or running through squeue before the records had it.
  expect(events.some((e) => e.from === 'squeue' && ['pending', 'running'].includes(e.state))).toBe(true);
  expect(events.at(-1)).toMatchObject({ state: 'completed', from: 'sacct' });

  // The job ran as uid 3100 on the "cluster" side, and the hostile label is only text.
  expect(fs.readFileSync(path.join(dest, 'uid.txt'), 'utf8').trim()).toBe(String(cluster.sshd.uid));
  expect(fs.statSync(path.join(dest, 'uid.txt')).uid).toBe(cluster.sshd.uid);
  const pwned = fs.existsSync(marker);
  fs.rmSync(marker, { force: true });
  expect(pwned).toBe(false);
  expect(fs.readFileSync(path.join(dest, 'label.txt'), 'utf8')).toBe(label);
  const script = path.join(submitted.job_dir, 'job.sh');
  expect(fs.statSync(script)).toMatchObject({ uid: cluster.sshd.uid });
  expect(fs.statSync(script).mode & 0o777).toBe(0o600);
  expect(fs.existsSync(path.join(submitted.job_dir, `slurm-${submitted.slurm_id}.out`))).toBe(true);

  const status = (await (await fetch(`${url}/api/remote-jobs/${submitted.id}`)).json()) as Record<string, unknown>;
  expect(status).toMatchObject({ state: 'completed', slurm_state: 'COMPLETED', template: 'hello', values: { dest, label, seconds: 2, cpus: 1, time: '5:00' } });
  expect(status.script).toBe(fs.readFileSync(script, 'utf8'));
  const list = (await (await fetch(`${url}/api/remote-jobs?person=alice&state=completed`)).json()) as { id: string; script?: string }[];
  expect(list.map((j) => j.id)).toContain(submitted.id);
  expect(list[0]?.script).toBeUndefined();
});

it('refuses bad values before anything reaches the cluster', async () => {
  const { service, url } = await start();
  const base = { person: 'alice', cluster: 'hpc', template: 'hello', values: { dest: `${cluster.remoteRoot}/bad` } };
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{ values: { dest: `${cluster.remoteRoot}/bad`, label: 'a\nb' } }, 400, /label: control characters/],
    [{ values: { dest: `${cluster.remoteRoot}/bad`, seconds: '1; touch /tmp/pwned' } }, 400, /seconds: .*expected number/],
    [{ values: { dest: `${cluster.remoteRoot}/bad`, partition: 'test\n#SBATCH --uid=0' } }, 400, /partition: letters, digits/],
    [{ values: { dest: '/etc' } }, 400, /outside the allowed folders/],
    [{ values: { dest: `${cluster.remoteRoot}/../x` } }, 400, /contains "\.\."/],
    [{ values: { dest: `${cluster.remoteRoot}/bad`, nope: 1 } }, 400, /nope/],
    [{ template: 'missing' }, 400, /unknown job template "missing"/],
    [{ template: '../hello' }, 400, /unknown job template/],
    [{ cluster: 'nowhere' }, 400, /unknown cluster "nowhere"/],
    [{ person: 'nobody' }, 400, /unknown person "nobody"/],
    [{ extra: true }, 400, /invalid remote job/],
  ];
  for (const [change, status, message] of cases) {
    const res = await post(`${url}/api/remote-jobs`, { ...base, ...change });
    expect({ change, status: res.status }).toEqual({ change, status });
    expect(res.body.message).toMatch(message);
  }
  expect(service.remoteStore.list()).toEqual([]);
  expect(fs.existsSync(`${cluster.remoteRoot}/bad`)).toBe(false);
});

it('records why Slurm rejected a job, and does not submit it again', async () => {
  const { service, url } = await start();
  const res = await post(`${url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc', template: 'hello', values: { dest: `${cluster.remoteRoot}/rejected`, partition: 'nope' } });
  expect(res.status).toBe(422);
  expect(jobOf(res)).toMatchObject({ state: 'rejected', slurm_id: null });
  expect(jobOf(res).reason).toMatch(/^Slurm refused the job: invalid partition specified: nope; Batch job submission failed: Invalid partition name specified$/);
  await service.remoteJobs.pollOnce();
  expect(service.remoteStore.get(jobOf(res).id)).toMatchObject({ state: 'rejected', attempted: true, slurmId: null });
});

it('cancels a running job, and a restarted service finds a job by its name', async () => {
  const first = await start();
  const res = await post(`${first.url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc', template: 'hello', values: { dest: `${cluster.remoteRoot}/long`, seconds: 300 }, key: 'long-1' });
  expect(res.status).toBe(201);
  const { id, slurm_id: slurmId } = jobOf(res);
  await state(first.service, id, ['running']);
  // The same key finds the same job instead of submitting a second.
  const again = await post(`${first.url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc', template: 'hello', values: { dest: `${cluster.remoteRoot}/long`, seconds: 300 }, key: 'long-1' });
  expect(again).toMatchObject({ status: 200, body: { created: false, job: { id, slurm_id: slurmId } } });
  const other = await post(`${first.url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc', template: 'hello', values: { dest: `${cluster.remoteRoot}/long`, seconds: 299 }, key: 'long-1' });
  expect(other.status).toBe(409);
  expect(other.body.message).toMatch(/key "long-1" already names remote job .* with other values/);
  await first.service.stop();
  services.splice(services.indexOf(first.service), 1);

  // As if the service had died between sbatch and recording the id Slurm gave.
  const queue = new Queue(first.ledger);
  queue.db.prepare("UPDATE remote_jobs SET slurm_id = NULL, state = 'submitting', slurm_state = NULL WHERE id = ?").run(id);
  queue.close();

  const second = await start({ ledger_file: first.ledger });
  const found = await state(second.service, id, ['running']);
  expect(found).toMatchObject({ slurmId: slurmId, stateFrom: 'squeue' });

  const cancel = await post(`${second.url}/api/remote-jobs/${id}/cancel`, {});
  expect(cancel.status).toBe(200);
  const ended = await state(second.service, id, ['cancelled', 'completed', 'failed', 'unknown']);
  expect(ended).toMatchObject({ state: 'cancelled', stateFrom: 'sacct', slurmId: slurmId });
  expect(ended.slurmState).toMatch(/^CANCELLED/);
  const twice = await post(`${second.url}/api/remote-jobs/${id}/cancel`, {});
  expect(twice.status).toBe(409);
  expect(twice.body.message).toMatch(/already cancelled/);
  expect((await post(`${second.url}/api/remote-jobs/nope/cancel`, {})).status).toBe(404);
});

it('cancels a job whose sbatch is still under way as soon as Slurm names it', async () => {
  const { service } = await start();
  const submitting = service.remoteJobs.submit({ person: 'alice', cluster: 'hpc', template: 'hello', values: { dest: `${cluster.remoteRoot}/early`, seconds: 300 } });
  const [early] = service.remoteStore.list({ states: ['submitting'] });
  expect(early).toBeDefined();
  const id = early?.id ?? '';
  expect(await service.remoteJobs.cancel(id)).toMatchObject({ state: 'submitting' });
  const { job } = await submitting;
  expect(job.slurmId).toMatch(/^\d+$/);
  expect(await state(service, id, ['cancelled', 'completed', 'failed', 'unknown'])).toMatchObject({ state: 'cancelled', slurmId: job.slurmId });
});

it('refuses a cluster whose host key changed, before anything runs there', async () => {
  const { url } = await start();
  const dest = `${cluster.remoteRoot}/changed-key`;
  const res = await post(`${url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc-changed', template: 'hello', values: { dest } });
  expect(res.status).toBe(409);
  expect(jobOf(res)).toMatchObject({ state: 'blocked', slurm_id: null });
  expect(jobOf(res).reason).toMatch(/host key SHA256:\S+ does not match .*known_hosts\.changed.*update known_hosts_file for cluster hpc-changed/);
  expect(fs.existsSync(dest)).toBe(false);
});

it('blocks a job when the remote account is not the one the usermap records', async () => {
  const { url } = await start();
  usermap = cluster.usermap(cluster.sshd.uid + 1);
  try {
    const dest = `${cluster.remoteRoot}/wrong-uid`;
    const res = await post(`${url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc', template: 'hello', values: { dest } });
    expect(res.status).toBe(409);
    expect(jobOf(res).reason).toMatch(new RegExp(`gives ${cluster.sshd.user} uid ${cluster.sshd.uid}, but the usermap records ${cluster.sshd.user} uid ${cluster.sshd.uid + 1}`));
    expect(fs.existsSync(dest)).toBe(false);
    const bob = await post(`${url}/api/remote-jobs`, { person: 'bob', cluster: 'hpc', template: 'hello', values: { dest } });
    expect(bob.status).toBe(409);
    expect(jobOf(bob).reason).toMatch(/person bob has no account on cluster hpc/);
  } finally {
    usermap = cluster.usermap();
  }
});

it('refuses to start with a template that names an unknown variable, and lists the good ones', async () => {
  const broken = path.join(cluster.templates, 'broken.hbs');
  fs.writeFileSync(broken, '#!/bin/sh\n{{#if gpus}}echo {{nope}}{{/if}}\n');
  try {
    const service = createTransfer({ config: cluster.config(), log, usermap: () => usermap });
    await expect(service.start()).rejects.toThrow(/broken\.hbs: line 2: unknown variable "nope"/);
    service.queue.close();
  } finally {
    fs.rmSync(broken);
  }
  const { url } = await start();
  // Written after the start: refused when used, and listed as a problem.
  fs.writeFileSync(broken, '#!/bin/sh\n{{q nope}}\n');
  try {
    const res = await post(`${url}/api/remote-jobs`, { person: 'alice', cluster: 'hpc', template: 'broken', values: { dest: `${cluster.remoteRoot}/x` } });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/unknown variable "nope"/);
    const listed = (await (await fetch(`${url}/api/templates`)).json()) as { templates: { name: string }[]; problems: string[] };
    expect(listed.templates.map((t) => t.name)).toEqual(['hello']);
    expect(listed.problems).toEqual([expect.stringMatching(/broken\.hbs: line 2: unknown variable "nope"/)]);
  } finally {
    fs.rmSync(broken);
  }
});
