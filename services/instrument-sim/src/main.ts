#!/usr/bin/env node
/** cloudlet-instrument-sim: reads the config (--config FILE or CLOUDLET_CONFIG), starts, stops on a signal. */
import { parseArgs } from 'node:util';
import { AppError, createLogger, loadConfig, siteSection } from '@cloudlet/core';
import { createSimulator } from './app';
import { readOrCreateVncPassword, simSection } from './config';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  const config = loadConfig({ site: siteSection, sim: simSection }, { file: values.config ?? process.env.CLOUDLET_CONFIG });
  const log = createLogger({ name: 'instrument-sim', level: config.site.log_level });
  const password = readOrCreateVncPassword(config.sim.password_file);
  const sim = createSimulator({ config: config.sim, log, password });
  const stop = (): void => {
    log.info('stopping');
    sim.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const { vncPort, apiPort } = await sim.start();
  log.info({ vnc_port: vncPort, api_port: apiPort, listen_host: config.sim.listen_host, password_file: config.sim.password_file }, 'simulator ready');
}

main().catch((err: unknown) => {
  // Bad config, an exposed password file or a port in use want a message; anything else, a stack.
  const expected = err instanceof AppError || typeof (err as { syscall?: unknown } | null)?.syscall === 'string';
  process.stderr.write(`cloudlet-instrument-sim: ${expected ? (err as Error).message : ((err as Error).stack ?? String(err))}\n`);
  process.exit(1);
});
