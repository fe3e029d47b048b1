/**
 * What every multi-process test stack of the portal starts from: one temp dir with its state
 * and secrets folders, the portal's port and demo issuer chosen up front (the usermap names the
 * issuer before the portal runs), a YAML writer for the per-process configs, and the portal
 * process itself once the other services' settings are known.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { freePort, type RunningProcess, startProcess, tempDir } from '@cloudlet/core/testing';
import { DEMO_IDENTITIES, PORTAL_MAIN } from './harness';

export interface StackBase {
  dir: string;
  state: string;
  secrets: string;
  portalPort: number;
  url: string;
  issuer: string;
  site: { name: string; state_dir: string; log_level: string };
  /** Writes `doc` as YAML to `name` in the stack's dir and returns the path. */
  write: (name: string, doc: unknown) => string;
}

export async function stackBase(prefix: string): Promise<StackBase> {
  const dir = tempDir(prefix);
  const state = path.join(dir, 'var');
  const secrets = path.join(state, 'secrets');
  fs.mkdirSync(secrets, { recursive: true, mode: 0o700 });
  const portalPort = await freePort();
  const url = `http://127.0.0.1:${portalPort}`;
  const write = (name: string, doc: unknown): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, yaml.dump(doc));
    return file;
  };
  return { dir, state, secrets, portalPort, url, issuer: `${url}/dev-idp`, site: { name: 'Test facility', state_dir: state, log_level: 'info' }, write };
}

/** The portal with its demo provider; `portal` adds the settings for the services it fronts. */
export async function startPortal(base: StackBase, deps: { usermap: unknown; instruments: string; portal: Record<string, unknown> }): Promise<RunningProcess> {
  const portal = startProcess(process.execPath, [
    PORTAL_MAIN,
    '--config',
    base.write('portal.yml', {
      site: base.site,
      usermap: deps.usermap,
      instruments: { file: deps.instruments },
      portal: {
        listen_port: base.portalPort,
        session_secret_file: path.join(base.secrets, 'session.key'),
        oidc: { client_secret_file: path.join(base.secrets, 'client.secret') },
        dev_idp: { enabled: true, identities: DEMO_IDENTITIES },
        ...deps.portal,
      },
    }),
  ]);
  try {
    await portal.waitForLog((e) => e.msg === 'portal ready');
  } catch (err) {
    await portal.stop();
    throw err;
  }
  return portal;
}
