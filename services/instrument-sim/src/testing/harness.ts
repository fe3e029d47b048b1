/**
 * Fixtures for the simulator's own integration tests: a simulator in this process on
 * ephemeral loopback ports, or the real binary in a temp dir; and a reader for /events.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@cloudlet/core';
import { type RunningProcess, startProcess, tempDir } from '@cloudlet/core/testing';
import { createSimulator, type Simulator, type SimulatorDeps } from '../app';
import { simSection } from '../config';
import type { ControlId } from '../panel';
import type { MicroscopeSnapshot } from '../state';

export const SIM_MAIN = path.resolve(__dirname, '..', 'main.js');
export const TEST_PASSWORD = 'tEst-pw8';

export interface SimFixture {
  sim: Simulator;
  vncPort: number;
  apiPort: number;
  api: string;
  logs: Record<string, unknown>[];
  getJson<T>(urlPath: string): Promise<T>;
  state(): Promise<MicroscopeSnapshot>;
  /** Where to click for `id`: the middle of its button. */
  point(id: ControlId): [number, number];
  stop(): Promise<void>;
}

export async function startSimulator(options: Partial<Omit<SimulatorDeps, 'config' | 'log'>> & { config?: Record<string, unknown> } = {}): Promise<SimFixture> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const config = simSection.parse({ vnc_port: 0, api_port: 0, exposure_interval_s: 0.05, ...options.config });
  const sim = createSimulator({ password: TEST_PASSWORD, ...options, config, log: createLogger({ name: 'instrument-sim', destination: sink }) });
  const { vncPort, apiPort } = await sim.start();
  const api = `http://127.0.0.1:${apiPort}`;
  const getJson = async <T>(urlPath: string): Promise<T> => (await (await fetch(`${api}${urlPath}`)).json()) as T;
  return {
    sim,
    vncPort,
    apiPort,
    api,
    logs,
    getJson,
    state: () => getJson<MicroscopeSnapshot>('/state'),
    point(id) {
      const c = sim.panel.layout.controls.find((k) => k.id === id);
      if (!c) throw new Error(`no control ${id}`);
      return [c.rect.x + Math.floor(c.rect.width / 2), c.rect.y + Math.floor(c.rect.height / 2)];
    },
    stop: () => sim.stop(),
  };
}

export interface EventStream {
  /** Resolves with the first snapshot (already received or future) for which `match` holds. */
  next(match: (s: MicroscopeSnapshot) => boolean, timeoutMs?: number): Promise<MicroscopeSnapshot>;
  /** Comment lines (heartbeats) received so far. */
  comments: string[];
  close(): void;
}

/** Follows GET /events the way the simulated detector will. */
export function followEvents(url: string): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      if (res.statusCode !== 200 || !String(res.headers['content-type']).startsWith('text/event-stream')) {
        reject(new Error(`GET ${url}: ${res.statusCode} ${res.headers['content-type']}`));
        return;
      }
      const seen: MicroscopeSnapshot[] = [];
      const comments: string[] = [];
      const waiters: { match: (s: MicroscopeSnapshot) => boolean; resolve: (s: MicroscopeSnapshot) => void }[] = [];
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let end: number;
        while ((end = buffered.indexOf('\n\n')) !== -1) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          for (const line of event.split('\n')) {
            if (line.startsWith(':')) comments.push(line);
            if (!line.startsWith('data: ')) continue;
            const snapshot = JSON.parse(line.slice(6)) as MicroscopeSnapshot;
            seen.push(snapshot);
            for (const w of [...waiters]) {
              if (w.match(snapshot)) {
                waiters.splice(waiters.indexOf(w), 1);
                w.resolve(snapshot);
              }
            }
          }
        }
      });
      resolve({
        comments,
        next(match, timeoutMs = 10_000) {
          const found = seen.find(match);
          if (found) return Promise.resolve(found);
          return new Promise((res2, rej2) => {
            const timer = setTimeout(() => rej2(new Error(`no matching event in ${timeoutMs} ms; saw ${JSON.stringify(seen.slice(-3))}`)), timeoutMs);
            waiters.push({
              match,
              resolve: (s) => {
                clearTimeout(timer);
                res2(s);
              },
            });
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

export interface SimProcess {
  process: RunningProcess;
  dir: string;
  passwordFile: string;
  vncPort: number;
  apiPort: number;
  stop(): Promise<number | null>;
}

/** The real binary with a temp config on ephemeral ports, ready once it logs 'simulator ready'. */
export async function startSimProcess(sim: Record<string, unknown> = {}): Promise<SimProcess> {
  const dir = tempDir('cloudlet-sim-');
  const passwordFile = path.join(dir, 'secrets', 'sim-vnc.password');
  const configFile = path.join(dir, 'cloudlet.yml');
  // JSON is YAML too.
  fs.writeFileSync(configFile, JSON.stringify({ site: { state_dir: dir, log_level: 'debug' }, sim: { vnc_port: 0, api_port: 0, password_file: passwordFile, ...sim } }));
  const proc = startProcess(process.execPath, [SIM_MAIN, '--config', configFile], { cwd: dir });
  const ready = await proc.waitForLog((e) => e.msg === 'simulator ready');
  return {
    process: proc,
    dir,
    passwordFile,
    vncPort: ready.vnc_port as number,
    apiPort: ready.api_port as number,
    stop: () => proc.stop(),
  };
}
