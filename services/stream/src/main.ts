#!/usr/bin/env node
/** cloudlet-stream: `serve` runs the service; status, retry, reject, requeue act on its ledger. */
import { configArg, createLogger, loadConfig, runCommandMain, runService, siteSection } from '@cloudlet/core';
import { createStream } from './app';
import { runCommand } from './cli';
import { streamSection } from './config';

const { configFile, rest } = configArg(process.argv.slice(2));

if (rest[0] === 'serve') {
  runService('cloudlet-stream', async () => {
    const config = loadConfig({ site: siteSection, stream: streamSection }, { file: configFile });
    const stream = createStream({ config: config.stream, log: createLogger({ name: 'stream', level: config.site.log_level }) });
    await stream.start();
    return stream;
  });
} else {
  runCommandMain('cloudlet-stream', () => runCommand(rest, configFile));
}
