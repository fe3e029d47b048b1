#!/usr/bin/env node
/**
 * cloudlet-dev-idp: the demo OpenID provider on its own port, for tests that need a second,
 * independent provider (say, one whose tokens carry the wrong issuer). Options come as one
 * JSON object in CLOUDLET_DEV_IDP (the client secret is never on the command line).
 */
import fs from 'node:fs';
import http from 'node:http';
import express from 'express';
import { createLogger, listen } from '@cloudlet/core';
import type { DemoIdentity } from './config';
import { createDevIdp, DEV_IDP_PATH } from './dev-idp';
import { createViews } from './views';

interface Options {
  host: string;
  clientId: string;
  clientSecretFile: string;
  redirectUri: string;
  identities: DemoIdentity[];
  stateDir: string;
}

async function main(): Promise<void> {
  const options = JSON.parse(process.env.CLOUDLET_DEV_IDP ?? '{}') as Options;
  const log = createLogger({ name: 'dev-idp' });
  const app = express();
  const server = http.createServer(app);
  const address = await listen(server, options.host ?? '127.0.0.1', 0);
  const issuer = `http://${address.address}:${address.port}${DEV_IDP_PATH}`;
  const router = await createDevIdp({
    issuer,
    clientId: options.clientId,
    clientSecret: fs.readFileSync(options.clientSecretFile, 'utf8').trim(),
    redirectUri: options.redirectUri,
    identities: options.identities,
    stateDir: options.stateDir,
    views: createViews('Demo provider'),
    log,
  });
  app.use(DEV_IDP_PATH, router);
  log.info({ issuer }, 'dev idp ready');
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

main().catch((err: unknown) => {
  process.stderr.write(`cloudlet-dev-idp: ${String(err)}\n`);
  process.exit(1);
});
