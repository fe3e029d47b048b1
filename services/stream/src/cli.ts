/**
 * cloudlet-stream status|retry|reject|requeue: the operator's handle on the ledger. It works on
 * the ledger file directly (SQLite allows a second process); the running service picks changes
 * up at its next tick.
 *   status [--json] [--follow]      counts, and with --follow a progress line while a backlog drains
 *   retry <id>... | retry --failed   failed -> queued
 *   reject <id>... [--reason TEXT]   -> rejected (kept, never processed)
 *   requeue <id>...                  done/rejected -> queued; steps whose outputs exist are skipped
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { errorMessage, loadConfig } from '@cloudlet/core';
import { streamSection } from './config';
import { Ledger, type MovieState } from './ledger';

const USAGE = `usage: cloudlet-stream [--config FILE] serve
       cloudlet-stream [--config FILE] status [--json] [--follow]
       cloudlet-stream [--config FILE] retry <id>... | retry --failed
       cloudlet-stream [--config FILE] reject <id>... [--reason TEXT]
       cloudlet-stream [--config FILE] requeue <id>...
`;

export async function runCommand(argv: string[], configFile: string | undefined, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, follow: { type: 'boolean' }, failed: { type: 'boolean' }, reason: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    err.write(`${errorMessage(e)}\n${USAGE}`);
    return 2;
  }
  const [command, ...ids] = parsed.positionals;
  const { values } = parsed;
  if (!command || values.help) {
    (values.help ? out : err).write(USAGE);
    return values.help ? 0 : 2;
  }
  const config = loadConfig({ stream: streamSection }, { file: configFile }).stream;
  const ledger = new Ledger(config.ledger_file);
  try {
    if (command === 'status') return await status(ledger, values.json === true, values.follow === true, out);
    const targets = values.failed && command === 'retry' ? ledger.inState('failed').map((m) => m.id) : ids.map(Number);
    if (targets.length === 0 || targets.some((n) => !Number.isInteger(n) || n <= 0)) {
      err.write(`${command} needs movie ids (whole numbers)\n${USAGE}`);
      return 2;
    }
    const change: Record<string, { from: MovieState[]; to: MovieState }> = {
      retry: { from: ['failed'], to: 'queued' },
      reject: { from: ['queued', 'failed'], to: 'rejected' },
      requeue: { from: ['done', 'rejected', 'failed'], to: 'queued' },
    };
    const rule = change[command];
    if (!rule) {
      err.write(`unknown command "${command}"\n${USAGE}`);
      return 2;
    }
    let code = 0;
    for (const id of targets) {
      const movie = ledger.get(id);
      if (!movie) {
        err.write(`${id}: no such movie\n`);
        code = 1;
      } else if (!rule.from.includes(movie.state)) {
        err.write(`${id}: is ${movie.state}; ${command} applies to ${rule.from.join(' or ')} movies\n`);
        code = 1;
      } else {
        const reason = command === 'reject' ? `rejected by ${os.userInfo().username}${values.reason ? `: ${values.reason}` : ''}` : null;
        ledger.transition(id, rule.to, { reason, attempts: 0, ...(command === 'requeue' ? { stepIndex: 0 } : {}), stamps: { [command]: Date.now() } });
        out.write(`${id}: ${movie.state} -> ${rule.to}\n`);
      }
    }
    return code;
  } finally {
    ledger.close();
  }
}

async function status(ledger: Ledger, json: boolean, follow: boolean, out: NodeJS.WritableStream): Promise<number> {
  const line = (): string => {
    const c = ledger.counts();
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    const finished = c.done + c.failed + c.rejected;
    const width = 30;
    const filled = total === 0 ? width : Math.round((finished / total) * width);
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${finished}/${total} finished  queued ${c.queued}  running ${c.running}  done ${c.done}  failed ${c.failed}  rejected ${c.rejected}`;
  };
  if (json) {
    out.write(`${JSON.stringify({ counts: ledger.counts(), passed_over: ledger.passedOver().length })}\n`);
    return 0;
  }
  if (!follow) {
    out.write(`${line()}\n`);
    for (const m of ledger.inState('failed').slice(-10)) out.write(`  failed ${m.id} ${m.path}: ${m.reason ?? ''}\n`);
    return 0;
  }
  // Until the backlog drains: one line, rewritten in place.
  for (;;) {
    out.write(`\r${line()}`);
    const c = ledger.counts();
    if (c.queued === 0 && c.running === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  out.write('\n');
  return 0;
}
