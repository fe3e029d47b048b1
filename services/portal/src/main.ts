#!/usr/bin/env node
/** cloudlet-portal: reads the config (--config FILE or CLOUDLET_CONFIG), starts, stops on a signal. */
import { configArg, createLogger, instrumentsSection, loadConfig, runService, siteSection } from '@cloudlet/core';
import { usermapSection } from '@cloudlet/usermap';
import { createPortal } from './app';
import { portalSection } from './config';

runService('cloudlet-portal', async () => {
  const config = loadConfig(
    { site: siteSection, usermap: usermapSection, instruments: instrumentsSection, portal: portalSection },
    { file: configArg(process.argv.slice(2)).configFile },
  );
  const log = createLogger({ name: 'portal', level: config.site.log_level });
  const portal = createPortal({ portal: config.portal, site: config.site, usermap: config.usermap, instrumentsFile: config.instruments.file, log });
  const { url } = await portal.start();
  if (config.portal.oidc.issuer === '' && config.portal.dev_idp.enabled) {
    // For the person at the terminal, not the log: demo passwords are public by design.
    const lines = config.portal.dev_idp.identities.map((i) => `    ${i.username.padEnd(10)} password: ${i.password.padEnd(14)} ${i.name}`);
    process.stderr.write(`\n  Cloudlet portal: ${url}/\n  Demo identities (embedded sign-in, loopback only):\n${lines.join('\n')}\n\n`);
  }
  return portal;
});
