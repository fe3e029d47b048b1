#!/usr/bin/env node
/** cloudlet-portal: reads the config (--config FILE or CLOUDLET_CONFIG), starts, stops on a signal. */
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, instrumentsSection, loadConfig, siteSection } from '@cloudlet/core';
import { usermapSection } from '@cloudlet/usermap';
import { createPortal } from './app';
import { portalSection } from './config';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  const config = loadConfig(
    { site: siteSection, usermap: usermapSection, instruments: instrumentsSection, portal: portalSection },
    { file: values.config ?? process.env.CLOUDLET_CONFIG },
  );
  const log = createLogger({ name: 'portal', level: config.site.log_level });
  const portal = createPortal({ portal: config.portal, site: config.site, usermap: config.usermap, instrumentsFile: config.instruments.file, log });
  const { url } = await portal.start();
  if (config.portal.oidc.issuer === '' && config.portal.dev_idp.enabled) {
    // For the person at the terminal, not the log: demo passwords are public by design.
    const lines = config.portal.dev_idp.identities.map((i) => `    ${i.username.padEnd(10)} password: ${i.password.padEnd(14)} ${i.name}`);
    process.stderr.write(`\n  Cloudlet portal: ${url}/\n  Demo identities (embedded sign-in, loopback only):\n${lines.join('\n')}\n\n`);
  }
  const stop = (): void => {
    log.info('stopping');
    portal.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(err instanceof ConfigError ? `cloudlet-portal: ${err.message}\n` : `cloudlet-portal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
