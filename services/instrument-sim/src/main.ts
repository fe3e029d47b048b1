#!/usr/bin/env node
/** cloudlet-instrument-sim: reads the config (--config FILE or CLOUDLET_CONFIG), starts, stops on a signal. */
import { configArg, createLogger, loadConfig, runService, siteSection } from '@cloudlet/core';
import { createSimulator } from './app';
import { readOrCreateVncPassword, simSection } from './config';

runService('cloudlet-instrument-sim', async () => {
  const config = loadConfig({ site: siteSection, sim: simSection }, { file: configArg(process.argv.slice(2)).configFile });
  const log = createLogger({ name: 'instrument-sim', level: config.site.log_level });
  const password = readOrCreateVncPassword(config.sim.password_file);
  const sim = createSimulator({ config: config.sim, log, password });
  const { vncPort, apiPort } = await sim.start();
  log.info({ vnc_port: vncPort, api_port: apiPort, listen_host: config.sim.listen_host, password_file: config.sim.password_file }, 'simulator ready');
  return sim;
});
