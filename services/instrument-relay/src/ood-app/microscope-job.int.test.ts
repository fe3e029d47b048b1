/**
 * The microscope app's job, run for real in the order OOD's basic template runs it, against a
 * stand-in for the relay CLI (ood-apps/test/fixtures/cloudlet-relay; the CLI's own tests live
 * with the relay); then connection.yml loaded with OOD's parser and the session card's views
 * rendered from what the job left behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { loadYamlAsOod, renderErb } from '@cloudlet/core/testing';
import { APP_DIR, FIXTURE_CLI, processGroup, recordedCalls, runJob, stageJob, startJob } from './microscope-job';

jest.setTimeout(60_000);

const CONTROL_SECRET = 'Kq7-xZ2_';
const VIEW_SECRET = 'vW9_pL4-';

interface Relay {
  dir: string;
  calls: string;
  env: NodeJS.ProcessEnv;
}

/** A fixture relay CLI whose calls are recorded, with secrets from a file (never an env var). */
function fixtureRelay(env: NodeJS.ProcessEnv = {}): Relay {
  const dir = tempDir('microscope-relay-');
  const secrets = path.join(dir, 'secrets');
  fs.writeFileSync(secrets, `${CONTROL_SECRET}\n${VIEW_SECRET}\n`, { mode: 0o600 });
  const calls = path.join(dir, 'calls');
  return { dir, calls, env: { CLOUDLET_RELAY_CLI: FIXTURE_CLI, FIXTURE_CALLS: calls, FIXTURE_SECRETS: secrets, FIXTURE_SESSION_ID: 'rs-Job4Test_01', ...env } };
}

const OPEN_CONTROL = ['session', 'open', '--instrument', 'krios-1', '--mode', 'control', '--format', 'shell'];
const CLOSE = ['session', 'close', 'rs-Job4Test_01'];

const connectionFile = (dir: string): string => path.join(dir, 'connection.yml');
const renderInfo = (dir: string, running: boolean): Promise<string> =>
  renderErb({ kind: 'info', file: path.join(APP_DIR, 'info.md.erb'), staged_root: dir, running, user_context: { instrument: 'krios-1', mode: 'control', bc_num_hours: '1' } });

describe('the job, run as OOD runs it', () => {
  test('opens a session, writes a connection.yml OOD can load, keeps secrets out of argv and script.sh, blocks until expiry, then closes the session', async () => {
    const relay = fixtureRelay({ FIXTURE_EXPIRES_IN: '4' });
    const dir = await stageJob({ instrument: 'krios-1', mode: 'control', bc_num_hours: '1' }, relay.env);
    const job = startJob(dir, relay.env);
    try {
      await waitFor(() => fs.existsSync(connectionFile(dir)), 20_000, 'connection.yml');
      const connection = (await loadYamlAsOod(fs.readFileSync(connectionFile(dir), 'utf8'))) as Record<string, unknown>;
      expect(connection).toEqual({
        host: 'relay.example.org',
        port: 7443,
        password: CONTROL_SECRET,
        view_password: VIEW_SECRET,
        session_id: 'rs-Job4Test_01',
        expires_at: expect.any(Number) as unknown,
        websocket_path: 'websockify',
        instrument: 'krios-1',
        mode: 'control',
      });
      expect(Math.abs((connection.expires_at as number) - (Date.now() / 1000 + 4))).toBeLessThan(3);
      expect(fs.statSync(connectionFile(dir)).mode & 0o077).toBe(0);

      // Blocking, and no secret in any process's argv or environment while it does.
      const processes = processGroup(job.pgid);
      expect(processes.length).toBeGreaterThanOrEqual(3); // the batch script, script.sh, its sleep
      for (const p of processes) {
        for (const secret of [CONTROL_SECRET, VIEW_SECRET]) {
          expect(p.argv.join(' ')).not.toContain(secret);
          expect(p.environ.join('\n')).not.toContain(secret);
        }
      }
      const scriptSh = processes.find((p) => p.argv.some((a) => a.endsWith('script.sh')));
      expect(scriptSh?.environ).toEqual(expect.arrayContaining(['session_id=rs-Job4Test_01', 'instrument=krios-1', `CLOUDLET_RELAY_CLI=${FIXTURE_CLI}`]));
      expect(recordedCalls(relay.calls)).toEqual([OPEN_CONTROL]);

      // The session card, rendered from what the job wrote, as the dashboard would.
      const view = await renderErb({ kind: 'view', file: path.join(APP_DIR, 'view.html.erb'), connection_file: connectionFile(dir) });
      expect(view).toContain('path=rnode/relay.example.org/7443/websockify&amp;resize=scale#password=Kq7-xZ2_"');
      expect(view).toContain('&amp;view_only=true#password=vW9_pL4-"');
      expect(await renderInfo(dir, true)).toMatch(/Instrument:<\/strong> krios-1 \| <strong>Mode:<\/strong> Control \| <strong>Session ends:<\/strong> \d{4}-\d\d-\d\d \d\d:\d\d UTC/);

      expect(await job.exited).toBe(0);
      expect(recordedCalls(relay.calls)).toEqual([OPEN_CONTROL, CLOSE]);
    } finally {
      if (job.child.exitCode === null) process.kill(-job.pgid, 'SIGKILL');
    }
  });

  test('cancelling the job (TERM to all its processes, as scancel does) closes the relay session', async () => {
    const relay = fixtureRelay({ FIXTURE_EXPIRES_IN: '600' });
    const dir = await stageJob({ instrument: 'krios-1', mode: 'control', bc_num_hours: '1' }, relay.env);
    const job = startJob(dir, relay.env);
    await waitFor(() => fs.existsSync(connectionFile(dir)), 20_000, 'connection.yml');
    process.kill(-job.pgid, 'SIGTERM');
    await job.exited;
    await waitFor(() => recordedCalls(relay.calls).length === 2, 20_000, 'session close');
    expect(recordedCalls(relay.calls)).toEqual([OPEN_CONTROL, CLOSE]);
    await waitFor(() => processGroup(job.pgid).length === 0, 20_000, 'every job process to end');
  });

  test('a refused session stops the job before script.sh, and the card shows the relay\'s message', async () => {
    const message = 'Titan Krios G4 is booked for you from 2031-05-01T09:00:00.000Z to 2031-05-01T12:00:00.000Z; it is not your slot now. <b>';
    const relay = fixtureRelay({ FIXTURE_REFUSE: message });
    const dir = await stageJob({ instrument: 'krios-1', mode: 'control', bc_num_hours: '1' }, relay.env);
    const { code, output } = await runJob(dir, relay.env);
    expect(code).not.toBe(0);
    expect(output).toContain('it is not your slot now');
    expect(fs.existsSync(connectionFile(dir))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'script.ready'))).toBe(false);
    expect(recordedCalls(relay.calls)).toEqual([OPEN_CONTROL]);
    const info = await renderInfo(dir, false);
    expect(info).toContain('The relay did not open this session');
    expect(info).toContain('it is not your slot now. &lt;b&gt;');
    expect(info).not.toContain('Session ends');
  });

  const good = {
    host: 'relay.example.org',
    port: '7443',
    password: CONTROL_SECRET,
    view_password: VIEW_SECRET,
    session_id: 'rs-Job4Test_01',
    expires_at: '2099-01-01T00:00:00.000Z',
    websocket_path: 'websockify',
  };
  const lines = (values: Record<string, string>): string => Object.entries(values).map(([k, v]) => `export ${k}='${v}'\n`).join('');

  test.each<[string, (marker: string) => string]>([
    ['an extra command line', (m) => `${lines(good)}touch ${m}\n`],
    ['a command substitution in a value', (m) => lines({ ...good, host: `$(touch ${m})` })],
    ['a command after a value', (m) => lines(good).replace(`export port='7443'`, `export port='7443'; touch ${m}`)],
    ['backquotes in a value', (m) => lines({ ...good, websocket_path: `\`touch ${m}\`` })],
    ['a path in the host', () => lines({ ...good, host: 'relay.example.org/../x' })],
    ['a port out of range', () => lines({ ...good, port: '70000' })],
    ['an expiry that is not a time', () => lines({ ...good, expires_at: 'tomorrow' })],
    ['an expiry in the past', () => lines({ ...good, expires_at: '2001-01-01T00:00:00Z' })],
    ['a secret YAML would read as a number', () => lines({ ...good, password: '01234567' })],
    ['one secret for control and viewing', () => lines({ ...good, password: VIEW_SECRET })],
    ['a missing view secret', () => lines({ ...good, view_password: '' })],
    ['a backslash escape in a secret', () => lines({ ...good, password: 'abc\\ndefgh' })],
  ])('relay output is data: %s is refused, nothing runs, and the opened session is closed', async (_what, output) => {
    const marker = path.join(tempDir(), 'ran');
    const relay = fixtureRelay();
    fs.writeFileSync(path.join(relay.dir, 'session'), output(marker));
    const env = { ...relay.env, FIXTURE_SESSION_OUTPUT: path.join(relay.dir, 'session') };
    const dir = await stageJob({ instrument: 'krios-1', mode: 'control', bc_num_hours: '1' }, env);
    const { code, output: log } = await runJob(dir, env);
    expect(code).not.toBe(0);
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.existsSync(connectionFile(dir))).toBe(false);
    expect(recordedCalls(relay.calls)).toEqual([OPEN_CONTROL, CLOSE]);
    for (const secret of [CONTROL_SECRET, VIEW_SECRET]) expect(log).not.toContain(secret);
  });

  test('a session id that YAML would turn into a date is refused', async () => {
    const relay = fixtureRelay();
    fs.writeFileSync(path.join(relay.dir, 'session'), lines({ ...good, session_id: '2025-01-01' }));
    const env = { ...relay.env, FIXTURE_SESSION_OUTPUT: path.join(relay.dir, 'session') };
    const dir = await stageJob({ instrument: 'krios-1', mode: 'control', bc_num_hours: '1' }, env);
    expect((await runJob(dir, env)).code).not.toBe(0);
    expect(fs.existsSync(connectionFile(dir))).toBe(false);
  });

  test('a view session carries no control secret, even when the relay sends one; unknown names are ignored', async () => {
    const relay = fixtureRelay();
    fs.writeFileSync(path.join(relay.dir, 'session'), lines({ ...good, expires_at: new Date(Date.now() + 3000).toISOString(), path: '/nonexistent' }));
    const env = { ...relay.env, FIXTURE_SESSION_OUTPUT: path.join(relay.dir, 'session') };
    const dir = await stageJob({ instrument: 'krios-1', mode: 'view', bc_num_hours: '1' }, env);
    const job = startJob(dir, env);
    await waitFor(() => fs.existsSync(connectionFile(dir)), 20_000, 'connection.yml');
    const connection = (await loadYamlAsOod(fs.readFileSync(connectionFile(dir), 'utf8'))) as Record<string, unknown>;
    expect(connection.password).toBeNull();
    expect(connection.view_password).toBe(VIEW_SECRET);
    expect(connection.mode).toBe('view');
    expect(fs.readFileSync(connectionFile(dir), 'utf8')).not.toContain(CONTROL_SECRET);
    expect(await job.exited).toBe(0);
    expect(recordedCalls(relay.calls)).toEqual([['session', 'open', '--instrument', 'krios-1', '--mode', 'view', '--format', 'shell'], CLOSE]);
  });

  test('before the job runs, the card shows the form values and no connection', async () => {
    const info = await renderInfo(tempDir(), false);
    expect(info).toMatch(/Instrument:<\/strong> krios-1 \| <strong>Mode:<\/strong> Control<\/p>/);
    expect(info).not.toMatch(/Session ends|did not open/);
  });
});
