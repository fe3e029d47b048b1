#!/usr/bin/env node
/** cloudlet-stream: `serve` runs the service; status, retry, reject, requeue act on its ledger. */
import { ConfigError, createLogger, loadConfig, siteSection } from '@cloudlet/core';
import { createStream } from './app';
import { runCommand } from './cli';
import { streamSection } from './config';

const args = process.argv.slice(2);
const at = args.indexOf('--config');
const configFile = at >= 0 ? args[at + 1] : process.env.CLOUDLET_CONFIG;
const rest = at >= 0 ? [...args.slice(0, at), ...args.slice(at + 2)] : args;

async function serve(): Promise<void> {
  const config = loadConfig({ site: siteSection, stream: streamSection }, { file: configFile });
  const log = createLogger({ name: 'stream', level: config.site.log_level });
  const stream = createStream({ config: config.stream, log });
  await stream.start();
  const stop = (): void => {
    stream.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const run = rest[0] === 'serve' ? serve() : runCommand(rest, configFile).then((code) => {
  process.exitCode = code;
});
run.catch((err: unknown) => {
  process.stderr.write(err instanceof ConfigError ? `cloudlet-stream: ${err.message}\n` : `cloudlet-stream: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
