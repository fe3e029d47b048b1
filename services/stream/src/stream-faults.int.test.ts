/**
 * Faults outside the service's control, produced for real: a movie the service may not read
 * (the service runs as an unprivileged user, as it does in production), and an output disk that
 * fills up (a 512 KiB tmpfs). Each is a recorded reason, and the rest keeps flowing.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { createLogger } from '@cloudlet/core';
import { startProcess, tempDir, waitFor } from '@cloudlet/core/testing';
import { createStream } from './app';
import { streamSection } from './config';
import { Ledger } from './ledger';
import { writeMovie } from './testing/tiny-movies';

jest.setTimeout(60_000);

const NOBODY = 65534;

test('a movie the service may not read is recorded with the reason, and processed once it is readable', async () => {
  const dir = tempDir('cloudlet-stream-perm-');
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  const ledgerFile = path.join(dir, 'ledger.sqlite');
  const config = path.join(dir, 'c.yml');
  // About reading the movie, not processing it: one step that does nothing.
  const pipelineFile = path.join(dir, 'p.yml');
  fs.writeFileSync(pipelineFile, yaml.dump({ steps: [{ name: 'noop', builtin: 'noop' }] }));
  fs.writeFileSync(config, yaml.dump({ site: { state_dir: dir }, stream: { roots: [{ path: data, mode: 'event' }], settle_ms: 100, ledger_file: ledgerFile, output_dir: path.join(dir, 'out'), pipeline_file: pipelineFile, listen_port: 0 } }));
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
  fs.chmodSync(dir, 0o755);
  const secret = path.join(data, 'secret.mrc');
  writeMovie(secret);
  fs.chmodSync(secret, 0o000);
  writeMovie(path.join(data, 'ok.mrc'));
  const service = startProcess('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, path.join(__dirname, 'main.js'), '--config', config, 'serve']);
  try {
    await service.waitForLog((e) => e.msg === 'stream ready');
    const ledger = new Ledger(ledgerFile);
    try {
      await waitFor(() => ledger.counts().done === 1 && ledger.problems().length === 1, 15_000, 'one done, one problem');
      expect(ledger.problems()).toEqual([{ root: data, path: 'secret.mrc', reason: 'cannot read: EACCES' }]);
      fs.chmodSync(secret, 0o644);
      await waitFor(() => ledger.counts().done === 2, 15_000, 'the readable movie');
    } finally {
      ledger.close();
    }
  } finally {
    await service.stop();
  }
});

test('a full output disk fails the movie with the reason; after space is freed the next one is done', async () => {
  const dir = tempDir('cloudlet-stream-full-');
  const data = path.join(dir, 'data');
  const out = path.join(dir, 'out');
  fs.mkdirSync(data);
  fs.mkdirSync(out);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', out]);
  try {
    const step = path.join(dir, 'step.sh');
    // Writes as much as the movie's name asks for: big.mrc wants 2 MiB, the disk has 512 KiB.
    fs.writeFileSync(step, '#!/bin/sh\ncase "$1" in big*) n=2048 ;; *) n=16 ;; esac\nhead -c $((n*1024)) /dev/zero > "$2/product.bin"\n', { mode: 0o755 });
    const pipelineFile = path.join(dir, 'p.yml');
    fs.writeFileSync(pipelineFile, yaml.dump({ steps: [{ name: 'product', run: [step, '{{name}}', '{{out}}'], retries: 0 }] }));
    const s = createStream({ config: streamSection.parse({ roots: [{ path: data, mode: 'event' }], settle_ms: 100, ledger_file: path.join(dir, 'l.sqlite'), output_dir: out, pipeline_file: pipelineFile, listen_port: 0 }), log: createLogger({ name: 't', level: 'silent' }) });
    await s.start();
    try {
      writeMovie(path.join(data, 'big.mrc'));
      await waitFor(() => s.ledger.counts().failed === 1, 15_000, 'the big one to fail');
      expect(s.ledger.inState('failed')[0]?.reason).toBe('product failed: exit code 1');
      for (const d of fs.readdirSync(out)) fs.rmSync(path.join(out, d, 'product.bin'), { force: true });
      writeMovie(path.join(data, 'small.mrc'));
      await waitFor(() => s.ledger.counts().done === 1, 15_000, 'the small one');
    } finally {
      await s.stop();
    }
  } finally {
    execFileSync('umount', [out]);
  }
});
