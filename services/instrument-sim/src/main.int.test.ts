/** The cloudlet-instrument-sim binary: config, password file, logs, signals. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';
import { layoutPanel, COLOURS } from './panel';
import { SIM_MAIN, startSimProcess } from './testing/harness';
import { connect, RfbAuthError } from './testing/rfb-client';

jest.setTimeout(30_000);

function runSim(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [SIM_MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('cloudlet-instrument-sim', () => {
  test('creates its VNC password, serves the panel with it, never logs it, and stops on SIGTERM', async () => {
    const sim = await startSimProcess({ width: 800, height: 600, name: 'Krios twin' });
    try {
      const stat = fs.statSync(sim.passwordFile);
      expect(stat.mode & 0o777).toBe(0o600);
      const password = fs.readFileSync(sim.passwordFile, 'utf8').trim();
      expect(password).toMatch(/^[A-Za-z0-9_-]{8}$/);

      await expect(connect('127.0.0.1', sim.vncPort, 'not-it')).rejects.toBeInstanceOf(RfbAuthError);
      const c = await connect('127.0.0.1', sim.vncPort, password);
      expect(await c.readServerInit()).toMatchObject({ width: 800, height: 600, name: 'Krios twin' });
      c.requestUpdate(false);
      await c.readUpdate();
      const layout = layoutPanel(800, 600);
      expect(c.pixel(layout.valves.x + 3, layout.valves.y + 3)).toBe(COLOURS.valvesClosed);

      c.requestUpdate(true);
      c.click(layout.valves.x + 10, layout.valves.y + 10);
      await c.readUpdate();
      expect(c.pixel(layout.valves.x + 3, layout.valves.y + 3)).toBe(COLOURS.valvesOpen);
      const state = (await (await fetch(`http://127.0.0.1:${sim.apiPort}/state`)).json()) as { column_valves_open: boolean };
      expect(state.column_valves_open).toBe(true);
      await sim.process.waitForLog((e) => e.msg === 'control' && e.control === 'valves');
      await c.close();

      expect(await sim.stop()).toBe(0);
      expect(sim.process.lines.join('\n')).not.toContain(password);
    } finally {
      await sim.stop();
    }
  });

  test('keeps an existing password file', async () => {
    const dir = tempDir('cloudlet-sim-');
    const passwordFile = path.join(dir, 'pw');
    fs.writeFileSync(passwordFile, 'kept-pw1\n', { mode: 0o600 });
    const sim = await startSimProcess({ password_file: passwordFile });
    try {
      const c = await connect('127.0.0.1', sim.vncPort, 'kept-pw1');
      await c.readServerInit();
      await c.close();
    } finally {
      await sim.stop();
    }
  });

  test('refuses a password file that others can read', () => {
    const dir = tempDir('cloudlet-sim-');
    const passwordFile = path.join(dir, 'pw');
    fs.writeFileSync(passwordFile, 'exposed1\n');
    fs.chmodSync(passwordFile, 0o644);
    const r = runSim([], { CLOUDLET_SIM__PASSWORD_FILE: passwordFile, CLOUDLET_SIM__VNC_PORT: '0', CLOUDLET_SIM__API_PORT: '0' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/readable by group or others/);
    expect(r.stderr).not.toContain('exposed1');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('lists every configuration problem at once', () => {
    const dir = tempDir('cloudlet-sim-');
    const file = path.join(dir, 'c.yml');
    fs.writeFileSync(file, 'sim:\n  vnc_prot: 1\n  width: 320\n  exposure_interval_s: 0\n');
    const r = runSim(['--config', file], { CLOUDLET_SIM__API_PORT: 'many' });
    expect(r.status).toBe(1);
    for (const line of ['sim.vnc_prot: unknown key', 'sim.width: ', 'sim.exposure_interval_s: ', 'sim.api_port: ']) expect(r.stderr).toContain(line);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
