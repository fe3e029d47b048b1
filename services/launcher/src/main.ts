#!/usr/bin/env node
/** cloudlet-launcher: runs the session launcher (`serve`). */
import { configArg, createLogger, instrumentsSection, loadConfig, loadInstruments, runService, siteSection } from '@cloudlet/core';
import { UsermapStore, usermapSection } from '@cloudlet/usermap';
import { createLauncherService } from './app';
import { launcherSection } from './config';

const { configFile, rest } = configArg(process.argv.slice(2));
if (rest[0] !== 'serve') {
  process.stderr.write('usage: node services/launcher/dist/main.js serve [--config FILE]\n');
  process.exit(2);
}

runService('cloudlet-launcher', async () => {
  const config = loadConfig({ site: siteSection, usermap: usermapSection, instruments: instrumentsSection, launcher: launcherSection }, { file: configFile });
  const log = createLogger({ name: 'launcher', level: config.site.log_level });
  const usermap = UsermapStore.open({ file: config.usermap.file, log });
  usermap.watch();
  const instruments = loadInstruments(config.instruments.file).instruments;
  const service = createLauncherService({ config: config.launcher, log, usermap: () => usermap.map, instruments: () => instruments });
  await service.start();
  return {
    async stop() {
      await service.stop();
      usermap.close();
    },
  };
});
