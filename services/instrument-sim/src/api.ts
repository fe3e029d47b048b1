/**
 * The read-only state API, for services that follow the microscope (the simulated detector
 * writes movies while `acquiring`). GET only; nothing here changes the microscope.
 *
 *   GET /state    the current snapshot
 *   GET /events   Server-Sent Events: the snapshot now and after every change
 *   GET /layout   where each control is on the screen (for training scripts and tests)
 *   GET /healthz  liveness and VNC client figures
 */
import type { ServerResponse } from 'node:http';
import express from 'express';
import { errorHandler, type Logger, requestLog } from '@cloudlet/core';
import type { RfbStats } from './rfb-server';
import type { MicroscopeSnapshot, MicroscopeState } from './state';

export const HEARTBEAT_MS = 15_000;
/** An events client further behind than this gets only the latest snapshot once it catches up. */
const MAX_EVENT_BACKLOG_BYTES = 64 * 1024;

export interface ApiDeps {
  state: MicroscopeState;
  log: Logger;
  vncStats: () => RfbStats;
  /** The panel's controls and their rectangles. */
  layout?: () => unknown;
  heartbeatMs?: number;
}

export interface StateApi {
  app: express.Express;
  /** Open /events streams. */
  readonly subscribers: number;
  /** Ends every /events stream and stops the heartbeat. */
  close(): void;
}

export function createApi(deps: ApiDeps): StateApi {
  const { state, log } = deps;
  /** Open /events streams, each with whether it fell behind and owes the latest snapshot. */
  const streams = new Map<ServerResponse, { behind: boolean }>();
  let heartbeat: NodeJS.Timeout | undefined;
  const app = express();
  app.disable('x-powered-by');
  app.use(requestLog(log));

  app.get('/healthz', (_req, res) => {
    const s = deps.vncStats();
    res.json({
      ok: true,
      vnc: { clients: s.clients, buffered_bytes: s.bufferedBytes, waiting_requests: s.waitingRequests, updates_sent: s.updatesSent, messages_received: s.messagesReceived },
      event_subscribers: streams.size,
    });
  });

  app.get('/layout', (_req, res) => {
    res.json(deps.layout?.() ?? {});
  });

  app.get('/state', (_req, res) => {
    res.set('Cache-Control', 'no-store').json(state.snapshot());
  });

  app.get('/events', (req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    const onDrain = (): void => {
      const stream = streams.get(res);
      if (stream?.behind) send(res, state.snapshot());
    };
    res.on('drain', onDrain);
    req.on('close', () => {
      res.off('drain', onDrain);
      unsubscribe(res);
    });
    subscribe(res);
    send(res, state.snapshot());
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'GET /state, /events, /layout or /healthz' });
  });
  app.use(errorHandler(log));

  /** A follower too far behind skips to the latest snapshot once it drains: stale ones help no one. */
  function send(res: ServerResponse, s: MicroscopeSnapshot): void {
    const stream = streams.get(res);
    if (!stream) return;
    stream.behind = res.writableLength > MAX_EVENT_BACKLOG_BYTES;
    if (!stream.behind) res.write(`id: ${s.seq}\ndata: ${JSON.stringify(s)}\n\n`);
  }

  const broadcast = (s: MicroscopeSnapshot): void => {
    for (const res of streams.keys()) send(res, s);
  };

  // One state listener and one heartbeat for all followers, and only while there are any.
  // Comments keep idle streams alive through proxies and let a follower notice a dead server.
  function subscribe(res: ServerResponse): void {
    streams.set(res, { behind: false });
    if (heartbeat) return;
    state.on('change', broadcast);
    heartbeat = setInterval(() => {
      for (const r of streams.keys()) if (r.writableLength <= MAX_EVENT_BACKLOG_BYTES) r.write(': heartbeat\n\n');
    }, deps.heartbeatMs ?? HEARTBEAT_MS);
  }

  function unsubscribe(res: ServerResponse): void {
    streams.delete(res);
    if (streams.size > 0 || !heartbeat) return;
    state.off('change', broadcast);
    clearInterval(heartbeat);
    heartbeat = undefined;
  }

  return {
    app,
    get subscribers() {
      return streams.size;
    },
    close() {
      for (const res of [...streams.keys()]) {
        unsubscribe(res);
        res.end();
      }
    },
  };
}
