/**
 * The whole instrument path as real processes on loopback, the way `npm start` runs it: the
 * simulated microscope, the relay, the portal with its demo provider, and optionally an x11vnc
 * on Xvfb as a second instrument. One temp dir, one config per process, ephemeral ports.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { freePort, type RunningProcess, startProcess, startX11vnc, tempDir, type VncServer } from '@cloudlet/core/testing';
import { DEMO_IDENTITIES, PORTAL_MAIN, REPO_ROOT, testUsermap } from './harness';

const SIM_MAIN = path.join(REPO_ROOT, 'services', 'instrument-sim', 'dist', 'main.js');
const RELAY_MAIN = path.join(REPO_ROOT, 'services', 'instrument-relay', 'dist', 'main.js');

export const X11VNC_PASSWORD = 'x11-Inst';

export interface Stack {
  url: string;
  simApi: string;
  x11vnc: VncServer | undefined;
  dir: string;
  /** Every secret the browser must never see. */
  instrumentPasswords: string[];
  processes: RunningProcess[];
  stop(): Promise<void>;
}

export async function startStack(options: { x11vnc?: boolean } = {}): Promise<Stack> {
  const dir = tempDir('cloudlet-stack-');
  const state = path.join(dir, 'var');
  const secrets = path.join(state, 'secrets');
  fs.mkdirSync(secrets, { recursive: true, mode: 0o700 });
  const portalPort = await freePort();
  const url = `http://127.0.0.1:${portalPort}`;
  const issuer = `${url}/dev-idp`;
  const processes: RunningProcess[] = [];
  const x11vnc = options.x11vnc ? await startX11vnc(X11VNC_PASSWORD, '1024x768x24') : undefined;
  const stopAll = async (): Promise<void> => {
    for (const p of processes.reverse()) await p.stop();
    await x11vnc?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const write = (name: string, doc: unknown): string => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, yaml.dump(doc));
      return file;
    };
    const site = { name: 'Test facility', state_dir: state, log_level: 'info' };
    const simPasswordFile = path.join(secrets, 'sim-vnc.password');
    const sim = startProcess(process.execPath, [SIM_MAIN, '--config', write('sim.yml', { site, sim: { vnc_port: 0, api_port: 0, password_file: simPasswordFile } })]);
    processes.push(sim);
    const simReady = await sim.waitForLog((e) => e.msg === 'simulator ready');

    const x11PasswordFile = path.join(secrets, 'x11vnc.password');
    fs.writeFileSync(x11PasswordFile, X11VNC_PASSWORD, { mode: 0o600 });
    const instruments = write('instruments.yml', {
      version: 1,
      instruments: [
        { id: 'krios-sim', name: 'Simulated Titan Krios', vnc: { host: '127.0.0.1', port: simReady.vnc_port, password_file: simPasswordFile } },
        ...(x11vnc ? [{ id: 'glacios', name: 'Glacios (x11vnc)', vnc: { host: '127.0.0.1', port: x11vnc.port, password_file: x11PasswordFile } }] : []),
      ],
    });
    const people = testUsermap(issuer) as { people: { id: string; instruments?: Record<string, string> }[] };
    for (const p of people.people) if (p.id === 'rosalind') p.instruments = { 'krios-sim': 'viewer', glacios: 'viewer' };
    for (const p of people.people) if (p.id === 'ada') p.instruments = { 'krios-sim': 'operator', glacios: 'operator' };
    const usermap = { file: write('usermap.yml', people), index_file: path.join(state, 'idx.tsv'), enrollments_file: path.join(state, 'enrollments.json'), ood_issuer: issuer };
    const tokenFile = path.join(secrets, 'relay-api.token');
    const relay = startProcess(process.execPath, [RELAY_MAIN, '--config', write('relay.yml', { site, usermap, instruments: { file: instruments }, relay: { api_port: 0, api_token_file: tokenFile, challenge_dir: path.join(state, 'challenges'), audit_file: path.join(state, 'audit.jsonl'), allowed_origins: [url] } }), 'serve']);
    processes.push(relay);
    const relayReady = await relay.waitForLog((e) => e.msg === 'relay ready');

    const portal = startProcess(process.execPath, [
      PORTAL_MAIN,
      '--config',
      write('portal.yml', {
        site,
        usermap,
        instruments: { file: instruments },
        portal: {
          listen_port: portalPort,
          session_secret_file: path.join(secrets, 'session.key'),
          oidc: { client_secret_file: path.join(secrets, 'client.secret') },
          dev_idp: { enabled: true, identities: DEMO_IDENTITIES },
          relay: { api_url: String(relayReady.api_url), api_token_file: tokenFile },
        },
      }),
    ]);
    processes.push(portal);
    await portal.waitForLog((e) => e.msg === 'portal ready');
    return {
      url,
      simApi: `http://127.0.0.1:${String(simReady.api_port)}`,
      x11vnc,
      dir,
      instrumentPasswords: [fs.readFileSync(simPasswordFile, 'utf8').trim(), X11VNC_PASSWORD],
      processes,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
