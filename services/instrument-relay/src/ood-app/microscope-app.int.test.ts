/**
 * The microscope OOD app's files, rendered by real Ruby with the binding OOD gives each, and the
 * YAML loaded with OOD's own parser. form.yml.erb calls a stand-in for the relay CLI
 * (ood-apps/test/fixtures/cloudlet-relay; the CLI's own tests live with the relay). The job
 * itself runs in microscope-job.int.test.ts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { tempDir } from '@cloudlet/core/testing';
import { loadYamlAsOod, RenderError, renderErb, renderErbWithLog } from '@cloudlet/core/testing';
import { APP_DIR, CONN_PARAMS, FIXTURE_CLI, isAlive, recordedCalls, recordedPids, stageJob } from './microscope-job';

jest.setTimeout(60_000);

const appFile = (name: string): string => path.join(APP_DIR, name);

type SelectOption = [string, string, Record<string, unknown>?];
interface FormYaml {
  cluster: string;
  cacheable: boolean;
  form_header?: string;
  form: string[];
  attributes: {
    instrument: { widget: string; required: boolean; help: string; options: SelectOption[] };
    mode: { widget: string; options: SelectOption[] };
    bc_num_hours: { min: number; max: number };
  };
}

const iso = (msFromNow: number): string => new Date(Date.now() + msFromNow).toISOString();

const INSTRUMENTS = [
  { id: 'krios-1', name: 'Titan Krios G4', role: 'operator', booking: { now: true, next_start: null, next_end: iso(90 * 60_000) } },
  { id: 'glacios', name: 'Glacios 2: "cryo" <b>&</b> #1 - [x]', role: 'viewer', booking: { now: false, next_start: '2031-05-01T09:00:00Z', next_end: '2031-05-01T12:00:00Z' } },
  { id: 'talos', name: 'Talos Arctica', role: null, booking: null },
  { id: 'arctica-2', name: 'Arctica', role: 'owner', booking: null },
  { id: "x'; reboot; '", name: 'Evil', role: 'operator', booking: null },
];

/** Renders form.yml.erb with the fixture CLI answering `instruments` with `instruments`. */
async function renderForm(instruments: unknown, env: NodeJS.ProcessEnv = {}): Promise<{ form: FormYaml; log: string; calls: string[][]; pids: number[] }> {
  const dir = tempDir('microscope-form-');
  const list = path.join(dir, 'instruments.json');
  fs.writeFileSync(list, JSON.stringify(instruments));
  const callsFile = path.join(dir, 'calls');
  const { output, log } = await renderErbWithLog({ kind: 'form', file: appFile('form.yml.erb') }, { env: { CLOUDLET_RELAY_CLI: FIXTURE_CLI, FIXTURE_INSTRUMENTS: list, FIXTURE_CALLS: callsFile, ...env } });
  const form = (await loadYamlAsOod(output)) as FormYaml;
  expect(yaml.load(output)).toEqual(form); // and js-yaml reads it the same way
  return { form, log, calls: recordedCalls(callsFile), pids: recordedPids(callsFile) };
}

const values = (options: SelectOption[]): string[] => options.map((o) => o[1]);

describe('form.yml.erb', () => {
  test('lists exactly the instruments the user holds a role on, with role and booking, and is never cached', async () => {
    const { form, calls } = await renderForm(INSTRUMENTS);
    expect(form.cacheable).toBe(false);
    expect(form.cluster).toBe('localhost');
    expect(form.form).toEqual(['instrument', 'mode', 'bc_num_hours']);
    expect(form.form_header).toBeUndefined();
    const options = form.attributes.instrument.options;
    expect(values(options)).toEqual(['krios-1', 'glacios']);
    const [krios, glacios] = options;
    expect(krios?.[0]).toMatch(/^Titan Krios G4 \(krios-1\) \| operator \| booked until \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    expect(krios?.[2]).toEqual({ 'data-max-bc-num-hours': 2 });
    expect(glacios?.[0]).toBe('Glacios 2: "cryo" <b>&</b> #1 - [x] (glacios) | viewer | next slot 2031-05-01 09:00 to 12:00 UTC');
    expect(form.attributes.instrument.required).toBe(true);
    expect(calls).toEqual([['instruments', '--format', 'json']]);
  });

  test('offers Control to an operator, hidden while an instrument they only view is selected', async () => {
    const { form } = await renderForm(INSTRUMENTS);
    expect(form.attributes.mode.options).toEqual([['Control', 'control', { 'data-option-for-instrument-glacios': false }], ['View only', 'view']]);
  });

  test('offers only View only to a user who views every instrument', async () => {
    const { form } = await renderForm(INSTRUMENTS.filter((i) => i.role === 'viewer'));
    expect(values(form.attributes.instrument.options)).toEqual(['glacios']);
    expect(values(form.attributes.mode.options)).toEqual(['view']);
  });

  test('runs the CLI from an argument array: a path with spaces and quotes works', async () => {
    const dir = path.join(tempDir(), "relay cli's $(dir)");
    fs.mkdirSync(dir);
    const cli = path.join(dir, 'cloudlet-relay');
    fs.copyFileSync(FIXTURE_CLI, cli);
    fs.chmodSync(cli, 0o755);
    const { form, calls } = await renderForm(INSTRUMENTS, { CLOUDLET_RELAY_CLI: cli, CLOUDLET_OOD_CLUSTER: 'cryo-local' });
    expect(values(form.attributes.instrument.options)).toEqual(['krios-1', 'glacios']);
    expect(form.cluster).toBe('cryo-local');
    expect(calls).toEqual([['instruments', '--format', 'json']]);
  });

  test.each([
    ['the relay is unreachable', { FIXTURE_FAIL: 'the relay is not reachable at http://127.0.0.1:7444' }],
    ['the CLI is missing', { CLOUDLET_RELAY_CLI: '/nonexistent/cloudlet-relay' }],
  ])('when %s, the form still renders, with no instruments and a clear message', async (_what, env) => {
    const { form, log } = await renderForm(INSTRUMENTS, env);
    expect(form.attributes.instrument.options).toEqual([]);
    expect(form.attributes.instrument.help).toMatch(/relay could not be reached/);
    expect(form.form_header).toMatch(/relay could not be reached/);
    expect(values(form.attributes.mode.options)).toEqual(['view']);
    expect(form.cacheable).toBe(false);
    expect(log).toMatch(/cloudlet-relay instruments failed/); // for the site admin, in the PUN's log
  });

  test('a relay that does not answer is cut off at the timeout, and the hung CLI is killed', async () => {
    const started = Date.now();
    const { form, pids } = await renderForm(INSTRUMENTS, { FIXTURE_HANG: '30', CLOUDLET_RELAY_TIMEOUT: '1' });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(form.attributes.instrument.options).toEqual([]);
    expect(form.attributes.instrument.help).toMatch(/relay could not be reached/);
    expect(pids).toHaveLength(1);
    expect(isAlive(pids[0]!)).toBe(false);
  });

  test('an answer that is not a list of instruments counts as a failure, not as no roles', async () => {
    const { form } = await renderForm({ error: 'nope' });
    expect(form.attributes.instrument.options).toEqual([]);
    expect(form.attributes.instrument.help).toMatch(/relay could not be reached/);
    const none = await renderForm([]);
    expect(none.form.attributes.instrument.help).toMatch(/no role on any instrument/);
  });
});

describe('submit.yml.erb', () => {
  test('asks for the basic template and the connection values the view needs', async () => {
    const text = await renderErb({ kind: 'submit', file: appFile('submit.yml.erb'), context: { instrument: 'krios-1', mode: 'control', bc_num_hours: '2' }, staged_root: '/tmp/x' });
    const submit = (await loadYamlAsOod(text)) as { batch_connect: { template: string; conn_params: string[] } };
    expect(yaml.load(text)).toEqual(submit);
    expect(submit.batch_connect.template).toBe('basic');
    expect(submit.batch_connect.conn_params).toEqual(CONN_PARAMS);
  });
});

describe('template/*.sh.erb', () => {
  const render = (name: string, context: Record<string, string>): Promise<string> =>
    renderErb({ kind: 'template', file: appFile(`template/${name}`), context, session: { staged_root: '/tmp/staged' } }, { env: { CLOUDLET_RELAY_CLI: FIXTURE_CLI } });

  test('render to valid bash; script.sh is executable, since OOD runs it rather than sourcing it', async () => {
    const dir = await stageJob({ instrument: 'krios-1', mode: 'control', bc_num_hours: '1' }, { CLOUDLET_RELAY_CLI: FIXTURE_CLI });
    for (const name of ['before.sh', 'script.sh', 'after.sh']) {
      const check = spawnSync('bash', ['-n', path.join(dir, name)], { encoding: 'utf8' });
      expect({ name, status: check.status, stderr: check.stderr }).toEqual({ name, status: 0, stderr: '' });
    }
    expect(fs.statSync(path.join(dir, 'script.sh')).mode & 0o111).toBe(0o111);
    const before = fs.readFileSync(path.join(dir, 'before.sh'), 'utf8');
    expect(before).toContain('\ninstrument=krios-1\nmode=control\n');
    expect(before).toContain(`\nCLOUDLET_RELAY_CLI=${FIXTURE_CLI}\n`);
  });

  test.each([
    ["x'; reboot; '", 'control'],
    ['$(reboot)', 'control'],
    ['`reboot`', 'control'],
    ['krios-1\nreboot', 'control'],
    ['krios-1;reboot', 'control'],
    ['../../etc', 'control'],
    ['Krios-1', 'control'],
    ['-rf', 'control'],
    ['', 'control'],
    ['2025-01-01', 'control'], // fits the id pattern, but connection.yml would hold a date OOD refuses to load
    ['on', 'control'], // and this a boolean
    ['krios-1', 'control; reboot'],
    ['krios-1', 'admin'],
  ])('refuse instrument %j with mode %j when OOD stages the job', async (instrument, mode) => {
    await expect(render('before.sh.erb', { instrument, mode, bc_num_hours: '1' })).rejects.toThrow(/Microscope: .*(not an instrument id|mode must be control or view)/);
    // The other two never see form values: staging stops at before.sh.erb's error.
    for (const name of ['script.sh.erb', 'after.sh.erb']) expect(await render(name, { instrument, mode, bc_num_hours: '1' })).not.toContain('reboot');
  });

  test('a refused value stops rendering with an error, not with a half-written script', async () => {
    const err = await render('before.sh.erb', { instrument: '$(reboot)', mode: 'view', bc_num_hours: '1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderError);
    expect((err as RenderError).stderr).toMatch(/^ArgumentError: Microscope: /);
  });
});

/** Every <a> in the page: its text and its href with HTML entities decoded. */
function links(html: string): { text: string; href: string }[] {
  const unescape = (s: string): string => s.replace(/&(amp|lt|gt|quot|#39);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e] ?? '');
  return [...html.matchAll(/<a [^>]*href="([^"]*)"[^>]*>([^<]*)<\/a>/g)].map((m) => ({ href: unescape(m[1] ?? ''), text: m[2] ?? '' }));
}

function novnc(href: string): { url: URL; fragmentPassword: string } {
  const url = new URL(href, 'https://ondemand.example.edu');
  expect(url.pathname).toBe('/pun/sys/dashboard/noVNC-1.3.0/vnc.html');
  expect(url.searchParams.get('autoconnect')).toBe('true');
  expect(url.searchParams.get('resize')).toBe('scale');
  expect(url.searchParams.has('password')).toBe(false);
  expect(href.indexOf('password=')).toBeGreaterThan(href.indexOf('#'));
  expect(url.hash.startsWith('#password=')).toBe(true);
  return { url, fragmentPassword: decodeURIComponent(url.hash.slice('#password='.length)) };
}

describe('view.html.erb', () => {
  const connection = { host: 'relay.example.org', port: 7443, password: 'Ctl-pass', view_password: 'View_pas', session_id: 'rs-abc', expires_at: 1_900_000_000, websocket_path: 'websockify', instrument: 'krios-1', mode: 'control' };
  const renderView = (values: Record<string, unknown>): Promise<string> => renderErb({ kind: 'view', file: appFile('view.html.erb'), connection: values });

  test('links noVNC through /rnode with the secret in the fragment, and a view-only link', async () => {
    const html = await renderView(connection);
    expect(html).toContain('path=rnode/relay.example.org/7443/websockify');
    const [control, view] = links(html);
    expect(control?.text).toBe('Launch Microscope');
    const c = novnc(control?.href ?? '');
    expect(c.url.searchParams.get('path')).toBe('rnode/relay.example.org/7443/websockify');
    expect(c.fragmentPassword).toBe('Ctl-pass');
    expect(view?.text).toBe('View only');
    const v = novnc(view?.href ?? '');
    expect(v.fragmentPassword).toBe('View_pas');
    expect(v.url.searchParams.get('view_only')).toBe('true');
    expect(html).toContain('2030-03-17 17:46 UTC');
    expect(html.trim().startsWith('<div') && html.trim().endsWith('</div>')).toBe(true); // one HTML block for Markdown
  });

  test('a view session gets no control link', async () => {
    const html = await renderView({ ...connection, mode: 'view', password: null });
    expect(links(html).map((l) => l.text)).toEqual(['View only']);
    expect(html).not.toContain('Ctl-pass');
  });

  test('values are URL-encoded into links and HTML-escaped into the page', async () => {
    const hostile = { ...connection, password: 'p"<>&\'#x y%', view_password: 'v"<>&#', session_id: '"><script>alert(1)</script>', instrument: '<b>x</b>&' };
    const html = await renderView(hostile);
    expect(html).not.toMatch(/<script|<b>/);
    const [control, view] = links(html);
    expect(novnc(control?.href ?? '').fragmentPassword).toBe(hostile.password);
    expect(novnc(view?.href ?? '').fragmentPassword).toBe(hostile.view_password);
    expect(html).toContain('&lt;b&gt;x&lt;/b&gt;&amp;');
    expect(html).toContain('&quot;&gt;&lt;script&gt;');
  });

  test.each([['evil"<>&.example'], ['..'], ['relay.example.org/../../pun'], ['']])('shows no link for host %j', async (host) => {
    const html = await renderView({ ...connection, host });
    expect(links(html)).toEqual([]);
    expect(html).toMatch(/not usable/);
    expect(html).not.toContain('"<>&');
  });

  test('an odd websocket path falls back to websockify', async () => {
    const html = await renderView({ ...connection, websocket_path: '../../pun/sys/files' });
    expect(novnc(links(html)[0]?.href ?? '').url.searchParams.get('path')).toBe('rnode/relay.example.org/7443/websockify');
  });
});
