#!/usr/bin/env node
/**
 * `cloudlet session start|list|stop|logs`: an admin's handle on the launcher's API. It reads
 * the same config as the service (where it listens, the token file) and never takes the token
 * on the command line, where every local user could read it in `ps`.
 */
import http from 'node:http';
import { configArg, loadConfig, readSecretFile, runCommandMain, siteSection } from '@cloudlet/core';
import { launcherSection } from './config';

const USAGE = `usage: cloudlet session <command> [--config FILE]
  start --user USER APP [--session ID] [--show-secret]   start a session; prints it (the secret only with --show-secret)
  list [--user USER]                                     sessions, newest last
  stop ID                                                stop and remove a session
  logs ID [--tail N]                                     the session's output
`;

interface Target {
  socketPath?: string;
  host?: string;
  port?: number;
  token: string;
}

export function call(target: Target, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...(target.socketPath ? { socketPath: target.socketPath } : { host: target.host, port: target.port }),
        method,
        path,
        headers: { authorization: `Bearer ${target.token}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = args[at + 1];
  args.splice(at, 2);
  return value;
}

function flag(args: string[], name: string): boolean {
  const at = args.indexOf(name);
  if (at >= 0) args.splice(at, 1);
  return at >= 0;
}

export async function runCli(argv: readonly string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { configFile, rest } = configArg(argv);
  const [group, command, ...args] = rest;
  if (group !== 'session' || command === undefined) {
    err.write(USAGE);
    return 2;
  }
  const config = loadConfig({ site: siteSection, launcher: launcherSection }, { file: configFile }).launcher;
  const target: Target = {
    ...(config.listen_socket ? { socketPath: config.listen_socket } : { host: config.listen_host, port: config.listen_port }),
    token: readSecretFile(config.token_file),
  };
  let res: { status: number; text: string };
  switch (command) {
    case 'start': {
      const user = option(args, '--user');
      const session = option(args, '--session');
      const show = flag(args, '--show-secret');
      const [app] = args;
      if (!user || !app) {
        err.write(USAGE);
        return 2;
      }
      res = await call(target, 'POST', '/api/sessions', { user, app, ...(session ? { session } : {}) });
      if (res.status === 201 && !show) {
        const parsed = JSON.parse(res.text) as { session: unknown };
        res = { status: res.status, text: JSON.stringify(parsed.session) };
      }
      break;
    }
    case 'list': {
      const user = option(args, '--user');
      res = await call(target, 'GET', `/api/sessions${user ? `?user=${encodeURIComponent(user)}` : ''}`);
      if (res.status === 200) {
        const rows = JSON.parse(res.text) as Record<string, unknown>[];
        out.write(rows.map((s) => [s.id, s.username, s.app, s.state, s.port ?? '-', s.created_at, s.reason ?? ''].join('\t')).join('\n') + (rows.length ? '\n' : ''));
        return 0;
      }
      break;
    }
    case 'stop':
    case 'logs': {
      const tail = option(args, '--tail');
      const [id] = args;
      if (!id) {
        err.write(USAGE);
        return 2;
      }
      res =
        command === 'stop'
          ? await call(target, 'DELETE', `/api/sessions/${encodeURIComponent(id)}`)
          : await call(target, 'GET', `/api/sessions/${encodeURIComponent(id)}/logs${tail ? `?tail=${encodeURIComponent(tail)}` : ''}`);
      if (command === 'logs' && res.status === 200) {
        out.write(res.text);
        return 0;
      }
      break;
    }
    default:
      err.write(USAGE);
      return 2;
  }
  if (res.status >= 400) {
    let message = res.text;
    try {
      message = (JSON.parse(res.text) as { message?: string }).message ?? res.text;
    } catch {
      // not JSON: show the body as it came
    }
    err.write(`cloudlet session ${command}: ${message} (HTTP ${res.status})\n`);
    return 1;
  }
  out.write(`${res.text}\n`);
  return 0;
}

if (require.main === module) runCommandMain('cloudlet', () => runCli(process.argv.slice(2)));
