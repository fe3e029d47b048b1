/**
 * The instrument relay: the session API on loopback, one WebSocket port per session, control
 * arbitration per instrument, and an audit trail of who watched or drove which instrument.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import express from 'express';
import pino from 'pino';
import {
  AppError,
  closeServer,
  errorHandler,
  type Instrument,
  listen,
  loadInstruments,
  type Logger,
  readOrCreateSecretFile,
  readSecretFile,
  requestLog,
  type SiteConfig,
} from '@cloudlet/core';
import { type UsermapConfig, UsermapStore } from '@cloudlet/usermap';
import { createApi } from './api';
import { checkAccess } from './bookings';
import { ChallengeStore } from '@cloudlet/usermap';
import type { RelayConfig } from './config';
import { ControlArbiter } from './control';
import { SessionRegistry } from './sessions';
import type { UpstreamTarget } from './upstream';

export interface RelayDeps {
  relay: RelayConfig;
  site: SiteConfig;
  usermap: UsermapConfig;
  instrumentsFile: string;
  log: Logger;
}

export interface Relay {
  start(): Promise<{ apiUrl: string }>;
  stop(): Promise<void>;
  registry: SessionRegistry;
  arbiter: ControlArbiter;
}

export function createRelay(deps: RelayDeps): Relay {
  const { relay: config, log } = deps;
  const usermap = UsermapStore.open({ file: deps.usermap.file, log });
  let instruments: Instrument[] = loadInstruments(deps.instrumentsFile).instruments;
  const token = readOrCreateSecretFile(config.api_token_file);
  const challenges = new ChallengeStore(config.challenge_dir);
  fs.mkdirSync(path.dirname(config.audit_file), { recursive: true });
  // Audit lines are few and must survive a crash: written synchronously.
  const audit = pino({ base: { service: 'relay-audit' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: config.audit_file, sync: true, mkdir: true }));
  const arbiter = new ControlArbiter();
  const blockedUntil = new Map<string, number>();

  const upstreamTarget = (instrument: Instrument): UpstreamTarget => {
    if (!instrument.vnc) throw new AppError(`${instrument.id} has no vnc section`, { code: 'no_vnc', status: 409, publicMessage: 'This instrument has no remote access configured.' });
    const blocked = blockedUntil.get(instrument.id) ?? 0;
    if (blocked > Date.now()) {
      throw new AppError(`upstream auth for ${instrument.id} failed recently; not retrying until ${new Date(blocked).toISOString()}`, {
        code: 'upstream_blocked',
        status: 503,
        publicMessage: 'The relay cannot sign in to the instrument right now. The facility has been alerted.',
      });
    }
    return { host: instrument.vnc.host, port: instrument.vnc.port, password: readSecretFile(instrument.vnc.password_file) };
  };

  const registry: SessionRegistry = new SessionRegistry({
    config,
    log,
    connection: {
      upstreamTarget: (instrument) => upstreamTarget(instrument),
      onUpstreamAuthFailure: (err, instrumentId) => {
        // Servers blacklist the source address after failures, and that address is the relay's,
        // shared by every user: stop trying until an admin has had time to fix the password.
        blockedUntil.set(instrumentId, Date.now() + config.upstream_auth_backoff_s * 1000);
        log.error({ instrument: instrumentId, error: err.message, retry_after_s: config.upstream_auth_backoff_s }, 'the instrument rejected the relay password; fix its password_file');
      },
      mayControl: (session) => arbiter.holds(session.instrument.id, session.id),
      joinedControl: (session) => arbiter.join(session.instrument.id, session.id),
      maxBufferedBytes: config.max_buffered_bytes,
      idleTimeoutMs: config.idle_timeout_s * 1000,
      pingIntervalMs: config.ping_interval_s * 1000,
      audit: (event, fields) => audit.info({ event, ...fields }),
    },
    stillAllowed: (session) => {
      const access = checkAccess(usermap.map, session.instrument, session.personId);
      return access.ok ? { ok: true } : { ok: false, message: access.message };
    },
    onSessionEnd: (session) => arbiter.leave(session.instrument.id, session.id),
  });

  arbiter.on('change', (event) => {
    audit.info({ event: 'control', instrument: event.instrument, from: registry.get(event.from ?? '')?.username ?? null, to: registry.get(event.to ?? '')?.username ?? null, reason: event.reason });
    if (event.from && event.from !== event.to) {
      for (const c of registry.get(event.from)?.connections ?? []) c.releaseInput();
    }
  });

  const app = express();
  app.disable('x-powered-by');
  app.use(requestLog(log));
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, sessions: registry.list().length });
  });
  app.use(
    '/api',
    createApi({ registry, arbiter, usermap, instruments: () => instruments, challenges, token, publicHost: config.public_host ?? config.listen_host, sessionMaxMs: config.session_max_s * 1000 }),
  );
  app.use(errorHandler(log));
  const server = http.createServer(app);

  usermap.onChange(() => {
    try {
      instruments = loadInstruments(deps.instrumentsFile).instruments;
    } catch (err) {
      log.error({ error: (err as Error).message }, 'instruments file invalid; keeping the last good list');
    }
  });

  return {
    registry,
    arbiter,
    async start() {
      const address = await listen(server, config.api_host, config.api_port);
      usermap.watch();
      const apiUrl = `http://${address.address}:${address.port}`;
      log.info({ api_url: apiUrl, instruments: instruments.map((i) => i.id) }, 'relay ready');
      return { apiUrl };
    },
    async stop() {
      usermap.close();
      await registry.closeAll('relay stopping');
      await closeServer(server);
      audit.flush();
    },
  };
}
