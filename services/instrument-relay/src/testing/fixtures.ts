/**
 * Real peers for the relay's tests: Xvfb + x11vnc with a VNC password (a real VNC server of
 * the kind instrument PCs run), and an in-process relay over temp config and state.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { createLogger } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';

export { freePort, startX11vnc, type VncServer } from '@cloudlet/core/testing';
import { createRelay, type Relay } from '../app';
import { relaySection } from '../config';

export interface RelayFixture {
  relay: Relay;
  apiUrl: string;
  token: string;
  dir: string;
  auditFile: string;
  instrumentsFile: string;
  /** Opens a session through the API as the portal would. */
  open(username: string, instrument: string, mode: 'control' | 'view'): Promise<{ status: number; body: Record<string, unknown> }>;
  stop(): Promise<void>;
}

export const ORIGIN = 'https://portal.test';

export interface RelayFixtureOptions {
  /** The instruments, given the fixture's temp dir (for password files). */
  instruments: (dir: string) => Record<string, unknown>[];
  /** Extra relay config. */
  relay?: Record<string, unknown>;
  uid?: number;
}

/** ada operates everything, rosalind views krios-1, bob holds no role. */
export async function startRelay(options: RelayFixtureOptions): Promise<RelayFixture> {
  const dir = tempDir('cloudlet-relay-');
  const usermapFile = path.join(dir, 'usermap.yml');
  const instrumentsFile = path.join(dir, 'instruments.yml');
  const instruments = options.instruments(dir);
  const ids = instruments.map((i) => String(i.id));
  fs.writeFileSync(
    usermapFile,
    yaml.dump({
      version: 1,
      uid_range: { min: 0, max: 4_000_000 },
      people: [
        { id: 'ada', name: 'Ada', account: { username: 'ada', uid: options.uid ?? process.getuid?.() ?? 0, gid: 100 }, instruments: Object.fromEntries(ids.map((i) => [i, 'operator'])) },
        { id: 'rosalind', name: 'Rosalind', account: { username: 'rosalind', uid: 3_000_001, gid: 100 }, instruments: { 'krios-1': 'viewer' } },
        { id: 'grace', name: 'Grace', account: { username: 'grace', uid: 3_000_003, gid: 100 }, instruments: { 'krios-1': 'operator' } },
        { id: 'bob', name: 'Bob', account: { username: 'bob', uid: 3_000_002, gid: 100 } },
      ],
    }),
  );
  fs.writeFileSync(instrumentsFile, yaml.dump({ version: 1, instruments }));
  const relayConfig = relaySection.parse({
    api_port: 0,
    api_token_file: path.join(dir, 'secrets', 'api.token'),
    challenge_dir: path.join(dir, 'challenges'),
    audit_file: path.join(dir, 'audit.jsonl'),
    allowed_origins: [ORIGIN],
    ping_interval_s: 5,
    ...options.relay,
  });
  const relay = createRelay({
    relay: relayConfig,
    site: { name: 't', state_dir: dir, log_level: 'silent' },
    usermap: { file: usermapFile, index_file: path.join(dir, 'idx'), enrollments_file: path.join(dir, 'e.json'), ood_issuer: 'https://x.example' },
    instrumentsFile,
    log: createLogger({ name: 'relay', level: 'silent' }),
  });
  const { apiUrl } = await relay.start();
  const token = fs.readFileSync(relayConfig.api_token_file, 'utf8').trim();
  return {
    relay,
    apiUrl,
    token,
    dir,
    auditFile: relayConfig.audit_file,
    instrumentsFile,
    async open(username, instrument, mode) {
      const res = await fetch(`${apiUrl}/api/sessions`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ username, instrument, mode }) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    async stop() {
      await relay.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function passwordFile(dir: string, password: string): string {
  const file = path.join(dir, `vnc-${Math.random().toString(36).slice(2)}.passwd`);
  fs.writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return file;
}

/** The audit trail as parsed lines (the relay writes it asynchronously: flush first). */
export function auditLines(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}
