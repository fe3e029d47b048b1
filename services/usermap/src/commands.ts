/** The admin CLI's commands. Each returns an exit code; errors are thrown as AppError. */
import yaml from 'js-yaml';
import { AppError, type Logger } from '@cloudlet/core';
import type { CliIo } from './cli';
import type { UsermapConfig } from './config';
import { EnrollmentQueue } from './enrollment';
import { oodUnescape } from './ood-escape';
import { writeOodIndex } from './ood-index';
import { type Person, ROLES, type UsermapDoc } from './schema';
import { readUsermapFile, updateUsermapFile, UsermapStore } from './store';

export interface CommandContext {
  config: UsermapConfig;
  args: string[];
  opts: Record<string, string | boolean | (string | boolean)[] | undefined>;
  io: CliIo;
  log: Logger;
}

type Command = (ctx: CommandContext) => number | Promise<number>;

function usage(message: string): AppError {
  return new AppError(message, { code: 'usage', status: 400 });
}

function arg(ctx: CommandContext, index: number, what: string): string {
  const value = ctx.args[index];
  if (value === undefined) throw usage(`missing ${what}`);
  return value;
}

function opt(ctx: CommandContext, name: string): string | undefined {
  const value = ctx.opts[name];
  return typeof value === 'string' ? value : undefined;
}

function required(ctx: CommandContext, name: string): string {
  const value = opt(ctx, name);
  if (value === undefined) throw usage(`--${name} is required`);
  return value;
}

function int(ctx: CommandContext, name: string): number | undefined {
  const value = opt(ctx, name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw usage(`--${name} must be a whole number, not "${value}"`);
  return Number(value);
}

function requiredInt(ctx: CommandContext, name: string): number {
  const value = int(ctx, name);
  if (value === undefined) throw usage(`--${name} is required`);
  return value;
}

function findPerson(doc: UsermapDoc, id: string): Person {
  const person = doc.people.find((p) => p.id === id || p.account.username === id);
  if (!person) throw new AppError(`no person "${id}" (by person id or username)`, { code: 'not_found', status: 404 });
  return person;
}

function update(ctx: CommandContext, change: (doc: UsermapDoc) => void): Promise<unknown> {
  return updateUsermapFile(ctx.config.file, change, { file: ctx.config.index_file, issuer: ctx.config.ood_issuer });
}

/** A new person with the lowest free uid unless one is given; gid defaults to the uid. */
function addPerson(doc: UsermapDoc, id: string, fields: { name: string; username: string; uid?: number | undefined; gid?: number | undefined; groups?: string[] }): Person {
  let uid = fields.uid;
  if (uid === undefined) {
    const used = new Set(doc.people.map((p) => p.account.uid));
    for (let u = doc.uid_range.min; u <= doc.uid_range.max && uid === undefined; u++) if (!used.has(u)) uid = u;
    if (uid === undefined) throw new AppError(`uid_range ${doc.uid_range.min}-${doc.uid_range.max} is full`, { code: 'uid_range_full', status: 409 });
  }
  const person: Person = {
    id,
    name: fields.name,
    status: 'active',
    account: { username: fields.username, uid, gid: fields.gid ?? uid, groups: fields.groups ?? [] },
    identities: [],
    clusters: [],
    instruments: {},
  };
  doc.people.push(person);
  return person;
}

function groups(ctx: CommandContext): string[] | undefined {
  const value = opt(ctx, 'groups');
  return value === undefined ? undefined : value.split(',').map((g) => g.trim()).filter(Boolean);
}

function setStatus(status: Person['status']): Command {
  return async (ctx) => {
    const id = arg(ctx, 0, 'person');
    await update(ctx, (doc) => {
      const person = findPerson(doc, id);
      person.status = status;
      if (status === 'retired') person.retired_at = new Date().toISOString();
      else delete person.retired_at;
    });
    ctx.io.out(`${id}: ${status}\n`);
    return 0;
  };
}

export const commands: Record<string, Command> = {
  validate(ctx) {
    const map = readUsermapFile(ctx.config.file);
    const identities = map.doc.people.reduce((n, p) => n + p.identities.length, 0);
    ctx.io.out(`${ctx.config.file}: valid (${map.size} people, ${identities} identities)\n`);
    return 0;
  },

  compile(ctx) {
    const map = readUsermapFile(ctx.config.file);
    const entries = writeOodIndex(ctx.config.index_file, map, ctx.config.ood_issuer);
    ctx.io.out(`${ctx.config.index_file}: ${entries} identities of ${ctx.config.ood_issuer}\n`);
    return 0;
  },

  async watch(ctx) {
    const store = UsermapStore.open({ file: ctx.config.file, indexFile: ctx.config.index_file, oodIssuer: ctx.config.ood_issuer, log: ctx.log });
    store.watch();
    ctx.log.info({ file: ctx.config.file, index: ctx.config.index_file }, 'watching the usermap');
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
      // A stat watcher alone does not keep the process alive.
      setInterval(() => undefined, 1 << 30);
    });
    store.close();
    return 0;
  },

  lookup(ctx) {
    const raw = arg(ctx, 0, 'url-encoded user');
    const sub = oodUnescape(raw);
    if (sub === undefined) throw usage(`"${raw}" is not valid URL encoding`);
    const result = readUsermapFile(ctx.config.file).lookupIdentity(opt(ctx, 'iss') ?? ctx.config.ood_issuer, sub);
    if (result?.status === 'active') {
      ctx.io.out(`${result.account.username}\n`);
      return 0;
    }
    ctx.io.err(result ? `${sub}: person ${result.person.id} is ${result.status}\n` : `${sub}: not mapped\n`);
    return 1;
  },

  list(ctx) {
    const people = readUsermapFile(ctx.config.file).doc.people.filter((p) => ctx.opts.all || p.status !== 'retired');
    if (ctx.opts.json) {
      ctx.io.out(`${JSON.stringify(people, null, 2)}\n`);
      return 0;
    }
    const rows = people.map((p) => [p.id, p.account.username, String(p.account.uid), p.status, String(p.identities.length), Object.entries(p.instruments).map(([i, r]) => `${i}:${r}`).join(' ')]);
    ctx.io.out(table(['PERSON', 'USERNAME', 'UID', 'STATUS', 'IDS', 'INSTRUMENTS'], rows));
    return 0;
  },

  show(ctx) {
    const person = findPerson(readUsermapFile(ctx.config.file).doc, arg(ctx, 0, 'person'));
    ctx.io.out(yaml.dump(person, { lineWidth: 120 }));
    return 0;
  },

  async add(ctx) {
    const id = arg(ctx, 0, 'person id');
    let uid = 0;
    await update(ctx, (doc) => {
      uid = addPerson(doc, id, { name: required(ctx, 'name'), username: required(ctx, 'username'), uid: int(ctx, 'uid'), gid: int(ctx, 'gid'), groups: groups(ctx) ?? [] }).account.uid;
    });
    ctx.io.out(`added ${id} with uid ${uid}\n`);
    return 0;
  },

  async link(ctx) {
    const id = arg(ctx, 0, 'person');
    await update(ctx, (doc) => {
      const ident: Person['identities'][number] = { iss: required(ctx, 'iss'), sub: required(ctx, 'sub'), linked_at: new Date().toISOString() };
      for (const key of ['idp', 'eppn', 'email'] as const) {
        const value = opt(ctx, key);
        if (value !== undefined) ident[key] = value;
      }
      findPerson(doc, id).identities.push(ident);
    });
    ctx.io.out(`linked ${required(ctx, 'sub')} to ${id}\n`);
    return 0;
  },

  async unlink(ctx) {
    const id = arg(ctx, 0, 'person');
    const iss = required(ctx, 'iss');
    const sub = required(ctx, 'sub');
    await update(ctx, (doc) => {
      const person = findPerson(doc, id);
      const before = person.identities.length;
      person.identities = person.identities.filter((i) => !(i.iss === iss && i.sub === sub));
      if (person.identities.length === before) throw new AppError(`${id} has no identity (${iss}, ${sub})`, { code: 'not_found', status: 404 });
    });
    ctx.io.out(`unlinked ${sub} from ${id}\n`);
    return 0;
  },

  suspend: setStatus('suspended'),
  activate: setStatus('active'),
  retire: setStatus('retired'),

  async role(ctx) {
    const id = arg(ctx, 0, 'person');
    const instrument = arg(ctx, 1, 'instrument');
    const role = arg(ctx, 2, 'role (operator, viewer or none)');
    if (role !== 'none' && !(ROLES as readonly string[]).includes(role)) throw usage(`role must be operator, viewer or none, not "${role}"`);
    await update(ctx, (doc) => {
      const person = findPerson(doc, id);
      if (role === 'none') delete person.instruments[instrument];
      else person.instruments[instrument] = role as (typeof ROLES)[number];
    });
    ctx.io.out(`${id} on ${instrument}: ${role}\n`);
    return 0;
  },

  async cluster(ctx) {
    const id = arg(ctx, 0, 'person');
    const cluster = arg(ctx, 1, 'cluster');
    const paths: Record<string, string> = {};
    for (const entry of (ctx.opts.path as string[] | undefined) ?? []) {
      const eq = entry.indexOf('=');
      if (eq <= 0) throw usage(`--path takes NAME=/absolute/path, not "${entry}"`);
      paths[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    await update(ctx, (doc) => {
      const person = findPerson(doc, id);
      const account: Person['clusters'][number] = { cluster, username: required(ctx, 'username'), uid: requiredInt(ctx, 'uid'), gid: requiredInt(ctx, 'gid'), paths };
      if (ctx.opts.verified) account.verified_at = new Date().toISOString();
      person.clusters = [...person.clusters.filter((c) => c.cluster !== cluster), account];
    });
    ctx.io.out(`${id} on ${cluster}: recorded\n`);
    return 0;
  },

  async enroll(ctx) {
    const queue = new EnrollmentQueue(ctx.config.enrollments_file);
    const sub = arg(ctx, 0, 'enroll subcommand (list, approve, reject)');
    const by = opt(ctx, 'by') ?? ctx.io.env.SUDO_USER ?? ctx.io.env.USER ?? 'admin';
    if (sub === 'list') {
      const requests = ctx.opts.all ? queue.list() : queue.pending();
      ctx.io.out(table(['REQUEST', 'STATUS', 'NAME', 'EMAIL', 'IDP', 'SUB', 'ATTEMPTS'], requests.map((r) => [r.id, r.status, r.name ?? '', r.email ?? '', r.idp ?? '', r.sub, String(r.attempts)])));
      return 0;
    }
    const requestId = arg(ctx, 1, 'request id');
    const request = queue.get(requestId);
    if (!request) throw new AppError(`no enrollment request ${requestId}`, { code: 'not_found', status: 404 });
    if (request.status !== 'pending') throw new AppError(`request ${requestId} was already ${request.status}`, { code: 'conflict', status: 409 });
    if (sub === 'reject') {
      const reason = opt(ctx, 'reason');
      await queue.decide(requestId, { status: 'rejected', by, ...(reason ? { reason } : {}) });
      ctx.io.out(`rejected ${requestId}\n`);
      return 0;
    }
    if (sub !== 'approve') throw usage(`unknown enroll subcommand "${sub}"`);
    const existing = opt(ctx, 'person');
    const fresh = opt(ctx, 'new');
    if ((existing === undefined) === (fresh === undefined)) throw usage('approve takes exactly one of --person or --new');
    let personId = existing ?? '';
    await update(ctx, (doc) => {
      const person = fresh
        ? addPerson(doc, fresh, { name: opt(ctx, 'name') ?? request.name ?? fresh, username: required(ctx, 'username'), uid: int(ctx, 'uid'), gid: int(ctx, 'gid'), groups: groups(ctx) ?? [] })
        : findPerson(doc, existing ?? '');
      personId = person.id;
      const ident: Person['identities'][number] = { iss: request.iss, sub: request.sub, linked_at: new Date().toISOString() };
      if (request.idp) ident.idp = request.idp;
      if (request.eppn) ident.eppn = request.eppn;
      if (request.email) ident.email = request.email;
      person.identities.push(ident);
    });
    await queue.decide(requestId, { status: 'approved', by, person: personId });
    ctx.io.out(`approved ${requestId}: ${request.sub} signs in as ${personId}\n`);
    return 0;
  },
};

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
