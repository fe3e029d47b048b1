/**
 * The whole instrument path as real processes on loopback, the way `npm start` runs it: the
 * simulated microscope, the relay, the portal with its demo provider, and optionally an x11vnc
 * on Xvfb as a second instrument. One temp dir, one config per process, ephemeral ports.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type RunningProcess, startProcess, startX11vnc, type VncServer } from '@cloudlet/core/testing';
import { REPO_ROOT, testUsermap } from './harness';
import { stackBase, startPortal } from './stack-base';

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
  const base = await stackBase('cloudlet-stack-');
  const { dir, state, secrets, url, issuer, site, write } = base;
  const processes: RunningProcess[] = [];
  const x11vnc = options.x11vnc ? await startX11vnc(X11VNC_PASSWORD, '1024x768x24') : undefined;
  const stopAll = async (): Promise<void> => {
    for (const p of processes.reverse()) await p.stop();
    await x11vnc?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
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

    const portal = await startPortal(base, { usermap, instruments, portal: { relay: { api_url: String(relayReady.api_url), api_token_file: tokenFile } } });
    processes.push(portal);
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
