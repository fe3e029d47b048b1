/** The CLI as an operator runs it: `cloudlet-transfer check-templates` on a config file. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '@cloudlet/core/testing';

const MAIN = path.join(__dirname, 'main.js');

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

it('check-templates lists good templates and fails on a broken one, naming its problem', () => {
  const dir = tempDir('cloudlet-transfer-cli-');
  try {
    const templates = path.join(dir, 'templates');
    fs.mkdirSync(templates);
    fs.writeFileSync(path.join(templates, 'ok.hbs'), '---\ndescription: fine\n---\n#!/bin/sh\necho {{cpus}}\n');
    const config = path.join(dir, 'cloudlet.yml');
    fs.writeFileSync(config, `transfer:\n  remote_jobs:\n    templates_dir: ${templates}\n`);
    expect(run(['check-templates', '--config', config])).toEqual({ status: 0, stdout: 'ok\tfine\n', stderr: '' });

    fs.writeFileSync(path.join(templates, 'bad.hbs'), '#!/bin/sh\necho {{q nope}}\n');
    const bad = run(['check-templates', '--config', config]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('ok\tfine\n');
    expect(bad.stderr).toMatch(/bad\.hbs: line 2: unknown variable "nope"/);

    fs.writeFileSync(config, 'transfer:\n  remote_jobs:\n    templates: x\n');
    const invalid = run(['check-templates', '--config', config]);
    expect(invalid.status).toBe(1);
    expect(invalid.stderr).toMatch(/transfer\.remote_jobs/);
    expect(run(['frobnicate']).status).toBe(2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
