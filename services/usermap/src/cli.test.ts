/** The admin CLI against real files in a temp dir: every write validated, atomic, indexed. */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { tempDir } from '@cloudlet/core/testing';
import { runCli } from './cli';
import { EnrollmentQueue } from './enrollment';

const EXAMPLE = path.resolve(__dirname, '..', '..', '..', 'config', 'usermap.example.yml');

interface Run {
  code: number;
  out: string;
  err: string;
}

function setup(): { run: (...argv: string[]) => Promise<Run>; file: string; index: string; enrollments: string } {
  const dir = tempDir('cloudlet-cli-');
  const file = path.join(dir, 'usermap.yml');
  const index = path.join(dir, 'index.tsv');
  const enrollments = path.join(dir, 'enrollments.json');
  fs.copyFileSync(EXAMPLE, file);
  const env = { CLOUDLET_USERMAP__FILE: file, CLOUDLET_USERMAP__INDEX_FILE: index, CLOUDLET_USERMAP__ENROLLMENTS_FILE: enrollments, CLOUDLET_USERMAP__OOD_ISSUER: 'https://cilogon.org' };
  const run = async (...argv: string[]): Promise<Run> => {
    let out = '';
    let err = '';
    const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t), env });
    return { code, out, err };
  };
  return { run, file, index, enrollments };
}

describe('cloudlet-usermap', () => {
  test('validate reports the counts of a good file', async () => {
    const { run } = setup();
    const r = await run('validate');
    expect(r).toMatchObject({ code: 0, out: expect.stringContaining('valid (3 people, 5 identities)') as unknown });
  });

  test('validate lists every problem of a bad file and exits 1', async () => {
    const { run, file } = setup();
    const doc = yaml.load(fs.readFileSync(file, 'utf8'), { schema: yaml.CORE_SCHEMA }) as { people: { account: { uid: number; username: string } }[] };
    doc.people[1]!.account.uid = 20001;
    doc.people[2]!.account.username = 'ada';
    fs.writeFileSync(file, yaml.dump(doc));
    const r = await run('validate');
    expect(r.code).toBe(1);
    expect(r.err).toContain('people[1].account.uid: uid 20001 is already used by people[0] (ada)');
    expect(r.err).toContain('people[2].account.username: username ada is already used by people[0] (ada)');
  });

  test('add, link, role: each write is valid, atomic and recompiles the index', async () => {
    const { run, file, index } = setup();
    expect((await run('add', 'grace', '--name', 'Grace Hopper', '--username', 'grace', '--groups', 'cryoem,staff')).out).toMatch(/added grace with uid 20000/);
    expect((await run('link', 'grace', '--iss', 'https://cilogon.org', '--sub', 'http://cilogon.org/serverA/users/777', '--email', 'g@x.example')).code).toBe(0);
    expect((await run('role', 'grace', 'krios-sim', 'viewer')).code).toBe(0);
    const doc = yaml.load(fs.readFileSync(file, 'utf8'), { schema: yaml.CORE_SCHEMA }) as { people: { id: string; instruments: Record<string, string>; account: { groups: string[] } }[] };
    const grace = doc.people.find((p) => p.id === 'grace');
    expect(grace).toMatchObject({ instruments: { 'krios-sim': 'viewer' }, account: { groups: ['cryoem', 'staff'] } });
    expect(fs.readFileSync(index, 'utf8')).toContain('http%3A%2F%2Fcilogon.org%2FserverA%2Fusers%2F777\tgrace\t20000\n');
    expect((await run('lookup', 'http%3A%2F%2Fcilogon.org%2FserverA%2Fusers%2F777')).out).toBe('grace\n');
  });

  test('a change that would break a rule is refused and the file is untouched', async () => {
    const { run, file } = setup();
    const before = fs.readFileSync(file, 'utf8');
    const r = await run('add', 'dup', '--name', 'Dup', '--username', 'ada');
    expect(r.code).toBe(1);
    expect(r.err).toContain('username ada is already used');
    const linkTaken = await run('link', 'rosalind', '--iss', 'https://cilogon.org', '--sub', 'http://cilogon.org/serverA/users/100001');
    expect(linkTaken.err).toMatch(/identity .* is already used by people\[0\] \(ada\)/);
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
  });

  test('retire drops a person from the OOD index but keeps their uid reserved', async () => {
    const { run, index } = setup();
    await run('compile');
    expect(fs.readFileSync(index, 'utf8')).toContain('\tada\t');
    expect((await run('retire', 'ada')).code).toBe(0);
    expect(fs.readFileSync(index, 'utf8')).not.toContain('\tada\t');
    expect((await run('lookup', 'http%3A%2F%2Fcilogon.org%2FserverA%2Fusers%2F100001')).err).toMatch(/ada is retired/);
    expect((await run('add', 'x', '--name', 'X', '--username', 'xx', '--uid', '20001')).err).toMatch(/uid 20001 is already used/);
    expect((await run('list')).out).not.toMatch(/^ada /m);
    expect((await run('list', '--all')).out).toMatch(/^ada +ada +20001 +retired/m);
  });

  test('usage errors exit 2 with the usage text', async () => {
    const { run } = setup();
    expect((await run()).code).toBe(2);
    expect((await run('frobnicate')).err).toContain('unknown command "frobnicate"');
    expect((await run('add', 'x', '--uid', 'abc', '--name', 'n', '--username', 'x')).code).toBe(2);
    expect((await run('role', 'ada', 'krios-sim', 'admin')).code).toBe(2);
    expect((await run('lookup', 'bad%zz')).code).toBe(2);
    expect((await run('list', '--no-such-flag')).code).toBe(2);
  });

  test('enrollment: a filed request is approved onto an existing person, once', async () => {
    const { run, enrollments } = setup();
    const queue = new EnrollmentQueue(enrollments);
    const req = await queue.submit({ iss: 'https://cilogon.org', sub: 'http://cilogon.org/serverB/users/9', name: 'Ada at B', email: 'ada@b.example' });
    await queue.submit({ iss: 'https://cilogon.org', sub: 'http://cilogon.org/serverB/users/9' });
    expect(queue.pending()).toHaveLength(1);
    expect((await run('enroll', 'list')).out).toContain(req.id);
    expect((await run('enroll', 'approve', req.id, '--person', 'ada')).code).toBe(0);
    expect((await run('lookup', 'http%3A%2F%2Fcilogon.org%2FserverB%2Fusers%2F9')).out).toBe('ada\n');
    expect(queue.get(req.id)).toMatchObject({ status: 'approved', person: 'ada' });
    expect((await run('enroll', 'approve', req.id, '--person', 'ada')).err).toMatch(/already approved/);
  });

  test('enrollment: approve as a new person, or reject with a reason', async () => {
    const { run, enrollments } = setup();
    const queue = new EnrollmentQueue(enrollments);
    const a = await queue.submit({ iss: 'https://cilogon.org', sub: 'sub-a', name: 'New\u0007 Person\n' });
    const b = await queue.submit({ iss: 'https://cilogon.org', sub: 'sub-b' });
    expect(a.name).toBe('New  Person'); // control characters never reach an admin's terminal
    expect((await run('enroll', 'approve', a.id, '--new', 'newp', '--username', 'newp')).code).toBe(0);
    expect((await run('lookup', 'sub-a')).out).toBe('newp\n');
    expect((await run('enroll', 'approve', b.id)).code).toBe(2);
    expect((await run('enroll', 'reject', b.id, '--reason', 'not a facility user')).code).toBe(0);
    expect(queue.get(b.id)).toMatchObject({ status: 'rejected', reason: 'not a facility user' });
  });

  test('a config file with an unknown key is refused with its path', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'c.yml');
    fs.writeFileSync(config, 'usermap:\n  fiel: x\n');
    let err = '';
    const code = await runCli(['--config', config, 'validate'], { out: () => undefined, err: (t) => (err += t), env: {} });
    expect(code).toBe(1);
    expect(err).toContain('usermap.fiel: unknown key');
  });
});
