#!/usr/bin/env node
/** cloudlet-transfer: runs the transfer service (`serve`). */
import { configArg, createLogger, loadConfig, runService, siteSection } from '@cloudlet/core';
import { UsermapStore, usermapSection } from '@cloudlet/usermap';
import { createTransfer } from './app';
import { transferSection } from './config';

const { configFile, rest } = configArg(process.argv.slice(2));
if (rest[0] !== 'serve') {
  process.stderr.write('usage: cloudlet-transfer serve [--config FILE]\n');
  process.exit(2);
}

runService('cloudlet-transfer', async () => {
  const config = loadConfig({ site: siteSection, usermap: usermapSection, transfer: transferSection }, { file: configFile });
  const log = createLogger({ name: 'transfer', level: config.site.log_level });
  const usermap = UsermapStore.open({ file: config.usermap.file, log });
  usermap.watch();
  const service = createTransfer({ config: config.transfer, log, usermap: () => usermap.map });
  await service.start();
  return {
    async stop() {
      await service.stop();
      usermap.close();
    },
  };
});
