/**
 * The relay's client commands, run as the person (an OOD job script, or a terminal):
 *   cloudlet-relay instruments [--format json|table]
 *   cloudlet-relay session open --instrument ID --mode control|view [--format shell|json]
 *   cloudlet-relay session close SESSION_ID
 * Identity is proven by a file-ownership challenge (@cloudlet/usermap caller.ts); secrets come back on stdout,
 * never through argv. `--format shell` prints `export name='value'` lines, single-quoted.
 */
import { parseArgs } from 'node:util';
import { errorMessage, loadConfig } from '@cloudlet/core';
import { proveCaller } from '@cloudlet/usermap';
import { relaySection } from './config';

const USAGE = `usage: cloudlet-relay [--config FILE] serve
       cloudlet-relay [--config FILE] instruments [--format json|table]
       cloudlet-relay [--config FILE] session open --instrument ID --mode control|view [--format shell|json]
       cloudlet-relay [--config FILE] session close SESSION_ID
`;

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

async function call(apiUrl: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${apiUrl}/api${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(await proveCaller(apiUrl)) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status === 204) return undefined;
  const data = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(typeof data.message === 'string' ? data.message : `relay answered ${res.status}`);
  return data;
}

export async function runClient(argv: string[], configFile: string | undefined): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { instrument: { type: 'string' }, mode: { type: 'string' }, format: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n${USAGE}`);
    return 2;
  }
  const [command, sub, arg] = parsed.positionals;
  const { values } = parsed;
  if (values.help || !command) {
    (values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  const relay = loadConfig({ relay: relaySection }, { file: configFile }).relay;
  const apiUrl = `http://${relay.api_host.includes(':') ? `[${relay.api_host}]` : relay.api_host}:${relay.api_port}`;
  try {
    if (command === 'instruments') {
      const list = (await call(apiUrl, 'GET', '/instruments')) as { id: string; name: string; role: string; booking: { now: boolean; next_start: string | null } }[];
      if (values.format === 'json') process.stdout.write(`${JSON.stringify(list)}\n`);
      else for (const i of list) process.stdout.write(`${i.id}\t${i.role}\t${i.booking.now ? 'available now' : `next slot ${i.booking.next_start ?? 'none'}`}\t${i.name}\n`);
      return 0;
    }
    if (command === 'session' && sub === 'open') {
      if (!values.instrument || (values.mode !== 'control' && values.mode !== 'view')) {
        process.stderr.write(`session open needs --instrument and --mode control|view\n${USAGE}`);
        return 2;
      }
      const s = (await call(apiUrl, 'POST', '/sessions', { instrument: values.instrument, mode: values.mode })) as Record<string, unknown>;
      if (values.format === 'json') {
        process.stdout.write(`${JSON.stringify(s)}\n`);
      } else {
        const fields: [string, unknown][] = [['host', s.host], ['port', s.port], ['password', s.password], ['view_password', s.view_password], ['session_id', s.id], ['expires_at', s.expires_at], ['websocket_path', s.websocket_path]];
        for (const [name, value] of fields) process.stdout.write(`export ${name}=${shellQuote(typeof value === 'string' || typeof value === 'number' ? String(value) : '')}\n`);
      }
      return 0;
    }
    if (command === 'session' && sub === 'close' && arg) {
      await call(apiUrl, 'DELETE', `/sessions/${encodeURIComponent(arg)}`);
      return 0;
    }
    process.stderr.write(USAGE);
    return 2;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    process.stderr.write(`cloudlet-relay: ${cause === 'ECONNREFUSED' ? `the relay is not reachable at ${apiUrl}` : errorMessage(err)}\n`);
    return 1;
  }
}
