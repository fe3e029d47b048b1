#!/usr/bin/env node
/** cloudlet-transfer: runs the transfer service (`serve`), or checks the job templates (`check-templates`). */
import { configArg, createLogger, failureMessage, loadConfig, runService, siteSection } from '@cloudlet/core';
import { UsermapStore, usermapSection } from '@cloudlet/usermap';
import { createTransfer } from './app';
import { transferSection } from './config';
import { loadTemplates } from './job-templates';

const { configFile, rest } = configArg(process.argv.slice(2));
const load = () => loadConfig({ site: siteSection, usermap: usermapSection, transfer: transferSection }, { file: configFile });

if (rest[0] === 'check-templates') {
  // For whoever edits a template: every problem of every file, before the service refuses to start.
  try {
    const { templates, problems } = loadTemplates(load().transfer.remote_jobs.templates_dir);
    for (const t of templates) process.stdout.write(`${t.name}\t${t.description}\n`);
    for (const p of problems) process.stderr.write(`${p}\n`);
    process.exit(problems.length > 0 ? 1 : 0);
  } catch (err) {
    process.stderr.write(failureMessage('cloudlet-transfer', err));
    process.exit(1);
  }
}
if (rest[0] !== 'serve') {
  process.stderr.write('usage: cloudlet-transfer serve|check-templates [--config FILE]\n');
  process.exit(2);
}

runService('cloudlet-transfer', async () => {
  const config = load();
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
