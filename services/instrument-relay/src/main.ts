#!/usr/bin/env node
/**
 * cloudlet-relay: `serve` runs the relay; the other commands are the client that OOD jobs and
 * people use (see cli.ts). Config: --config FILE or CLOUDLET_CONFIG.
 */
import { ConfigError, createLogger, instrumentsSection, loadConfig, siteSection } from '@cloudlet/core';
import { usermapSection } from '@cloudlet/usermap';
import { createRelay } from './app';
import { runClient } from './cli';
import { relaySection } from './config';

async function serve(configFile: string | undefined): Promise<void> {
  const config = loadConfig({ site: siteSection, usermap: usermapSection, instruments: instrumentsSection, relay: relaySection }, { file: configFile });
  const log = createLogger({ name: 'relay', level: config.site.log_level });
  const relay = createRelay({ relay: config.relay, site: config.site, usermap: config.usermap, instrumentsFile: config.instruments.file, log });
  await relay.start();
  const stop = (): void => {
    relay.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const args = process.argv.slice(2);
const configAt = args.indexOf('--config');
const configFile = configAt >= 0 ? args[configAt + 1] : process.env.CLOUDLET_CONFIG;
const rest = configAt >= 0 ? [...args.slice(0, configAt), ...args.slice(configAt + 2)] : args;

const run = rest[0] === 'serve' ? serve(configFile).then(() => undefined) : runClient(rest, configFile).then((code) => {
  process.exitCode = code;
});
run.catch((err: unknown) => {
  process.stderr.write(err instanceof ConfigError ? `cloudlet-relay: ${err.message}\n` : `cloudlet-relay: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
