/**
 * The microscope app's job with the real `cloudlet-relay` CLI against a real relay and a real
 * VNC server: OOD's connection.yml it leaves behind opens the instrument, and cancelling the
 * job closes the relay session.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { waitFor } from '@cloudlet/core/testing';
import { ORIGIN, passwordFile, type RelayFixture, startRelay, startX11vnc, type VncServer } from '../testing/fixtures';
import { WsRfbClient } from '../testing/ws-rfb-client';
import { loadYamlAsOod } from '@cloudlet/core/testing';
import { stageJob, startJob } from './microscope-job';

jest.setTimeout(60_000);

describe('the microscope job with the real relay', () => {
  let vnc: VncServer;
  let fx: RelayFixture;
  beforeAll(async () => {
    vnc = await startX11vnc('Job-Inst1');
    fx = await startRelay({ instruments: (dir) => [{ id: 'krios-1', name: 'Krios', vnc: { host: '127.0.0.1', port: vnc.port, password_file: passwordFile(dir, 'Job-Inst1') } }] });
  });
  afterAll(async () => {
    await fx?.stop();
    await vnc?.stop();
  });

  test('opens a session OOD can connect with, and closes it when the job is cancelled', async () => {
    const config = path.join(fx.dir, 'cli.yml');
    fs.writeFileSync(config, yaml.dump({ relay: { api_port: Number(new URL(fx.apiUrl).port), challenge_dir: path.join(fx.dir, 'challenges') } }));
    // OOD runs the CLI by path; this wrapper is how a site installs it (/opt/cloudlet/bin/cloudlet-relay).
    const cli = path.join(fx.dir, 'cloudlet-relay');
    fs.writeFileSync(cli, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(__dirname, '..', 'main.js'))} "$@"\n`, { mode: 0o755 });
    const env = { CLOUDLET_RELAY_CLI: cli, CLOUDLET_CONFIG: config };
    const dir = await stageJob({ instrument: 'krios-1', mode: 'control', bc_num_hours: '1' }, env);
    const job = startJob(dir, env);
    try {
      const connection = path.join(dir, 'connection.yml');
      await waitFor(() => fs.existsSync(connection), 20_000, `connection.yml (job output: ${job.output.join('')})`);
      const conn = (await loadYamlAsOod(fs.readFileSync(connection, 'utf8'))) as Record<string, unknown>;
      expect(conn).toMatchObject({ host: '127.0.0.1', instrument: 'krios-1', mode: 'control', websocket_path: 'websockify' });
      const session = fx.relay.registry.get(String(conn.session_id));
      expect(session?.username).toBe('ada');
      const client = await WsRfbClient.open(`ws://${String(conn.host)}:${String(conn.port)}/${String(conn.websocket_path)}`, ORIGIN);
      expect(await client.handshake(String(conn.password))).toMatchObject({ width: 800, height: 600 });
      client.close();
      process.kill(-job.pgid, 'SIGTERM'); // what scancel does to the job
      await job.exited;
      await waitFor(() => fx.relay.registry.get(String(conn.session_id)) === undefined, 10_000, 'the relay session to close');
    } finally {
      try {
        process.kill(-job.pgid, 'SIGKILL');
      } catch {
        // already gone
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
