/** The portal process refuses bad configuration clearly, and survives a bad usermap edit. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { CookieClient, PORTAL_MAIN, signIn, startPortal, testUsermap } from './testing/harness';

jest.setTimeout(60_000);

function runPortal(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [PORTAL_MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('portal start-up', () => {
  test('a missing config file is named, and the portal exits 1', () => {
    const r = runPortal(['--config', '/nonexistent/cloudlet.yml']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/nonexistent/cloudlet.yml');
    expect(r.stderr).toContain('file not found');
  });

  test('unknown keys and bad values are all listed at once', () => {
    const dir = tempDir();
    const file = path.join(dir, 'c.yml');
    fs.writeFileSync(file, 'portal:\n  listen_prot: 1\n  oidc: { scopes: openid }\nsite: { log_levle: debug }\n');
    const r = runPortal(['--config', file], { CLOUDLET_PORTAL__LISTEN_PORT: 'many' });
    expect(r.status).toBe(1);
    for (const line of ['portal.listen_prot: unknown key', 'portal.oidc.scopes: ', 'site.log_levle: unknown key', 'portal.listen_port: ']) expect(r.stderr).toContain(line);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a message, not a stack
  });

  test('the demo provider refuses to listen beyond loopback', () => {
    const r = runPortal([], { CLOUDLET_PORTAL__LISTEN_HOST: '0.0.0.0', CLOUDLET_SITE__STATE_DIR: tempDir() });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/only runs on loopback/);
  });

  test('an OIDC client secret that others can read is refused', () => {
    const dir = tempDir();
    const secret = path.join(dir, 'client.secret');
    fs.writeFileSync(secret, 'abc', { mode: 0o644 });
    fs.chmodSync(secret, 0o644);
    const r = runPortal([], { CLOUDLET_SITE__STATE_DIR: dir, CLOUDLET_PORTAL__LISTEN_PORT: '0', CLOUDLET_PORTAL__OIDC__ISSUER: 'https://cilogon.org', CLOUDLET_PORTAL__OIDC__CLIENT_SECRET_FILE: secret, CLOUDLET_PORTAL__SESSION_SECRET_FILE: path.join(dir, 's.key'), CLOUDLET_USERMAP__INDEX_FILE: path.join(dir, 'i.tsv') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/readable by group or others/);
  });
});

describe('portal and a usermap edited while it runs', () => {
  test('a conflicting edit is reported and the last good map keeps serving; a good edit takes effect', async () => {
    const portal = await startPortal();
    try {
      const health = async (): Promise<{ usermap_problems: number }> => (await (await fetch(`${portal.url}/healthz`)).json()) as { usermap_problems: number };
      const bad = testUsermap(portal.issuer) as { people: { account: { uid: number } }[] };
      bad.people[1]!.account.uid = 20001; // collides with ada
      fs.writeFileSync(portal.usermapFile, yaml.dump(bad));
      await waitFor(async () => (await health()).usermap_problems > 0, 10_000, 'the portal to notice the bad usermap');
      expect((await signIn(new CookieClient(), portal.url, 'rosalind', 'pw-rosalind')).status).toBe(200);
      expect(portal.process.lines.some((l) => l.includes('still serving the last good map'))).toBe(true);

      const good = testUsermap(portal.issuer) as { people: { instruments: Record<string, string> }[] };
      good.people[1]!.instruments['glacios'] = 'operator';
      fs.writeFileSync(portal.usermapFile, yaml.dump(good));
      await waitFor(async () => (await health()).usermap_problems === 0, 10_000, 'the portal to load the fixed usermap');
      const page = await (await signIn(new CookieClient(), portal.url, 'rosalind', 'pw-rosalind')).text();
      expect(page).toContain('Glacios 2');
    } finally {
      await portal.stop();
    }
  });
});
