#!/usr/bin/env node
/**
 * cloudlet-relay: `serve` runs the relay; the other commands are the client that OOD jobs and
 * people use (see cli.ts). Config: --config FILE or CLOUDLET_CONFIG.
 */
import { configArg, createLogger, instrumentsSection, loadConfig, runCommandMain, runService, siteSection } from '@cloudlet/core';
import { usermapSection } from '@cloudlet/usermap';
import { createRelay } from './app';
import { runClient } from './cli';
import { relaySection } from './config';

const { configFile, rest } = configArg(process.argv.slice(2));

if (rest[0] === 'serve') {
  runService('cloudlet-relay', async () => {
    const config = loadConfig({ site: siteSection, usermap: usermapSection, instruments: instrumentsSection, relay: relaySection }, { file: configFile });
    const log = createLogger({ name: 'relay', level: config.site.log_level });
    const relay = createRelay({ relay: config.relay, site: config.site, usermap: config.usermap, instrumentsFile: config.instruments.file, log });
    await relay.start();
    return relay;
  });
} else {
  runCommandMain('cloudlet-relay', () => runClient(rest, configFile));
}
