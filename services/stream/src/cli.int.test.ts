/** The operator's commands against a real ledger, and the service's status and event stream. */
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import yaml from 'js-yaml';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { createStream } from './app';
import { runCommand } from './cli';
import { streamSection } from './config';
import { writeMovie } from './testing/tiny-movies';

jest.setTimeout(30_000);

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  return {
    stream: new Writable({
      write(chunk: Buffer, _e, done) {
        text += chunk.toString();
        done();
      },
    }),
    text: () => text,
  };
}

test('status, retry, reject and requeue; status and events over HTTP', async () => {
  const dir = tempDir('cloudlet-stream-cli-');
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  const flag = path.join(dir, 'fixed');
  const step = path.join(dir, 'step.sh');
  fs.writeFileSync(step, `#!/bin/sh\n[ -e ${JSON.stringify(flag)} ] || { echo "not yet" >&2; exit 1; }\n`, { mode: 0o755 });
  const pipelineFile = path.join(dir, 'p.yml');
  fs.writeFileSync(pipelineFile, yaml.dump({ steps: [{ name: 'picky', run: [step], retries: 0 }] }));
  const raw = { roots: [{ path: data, mode: 'event' }], settle_ms: 100, ledger_file: path.join(dir, 'l.sqlite'), output_dir: path.join(dir, 'out'), pipeline_file: pipelineFile, listen_port: 0 };
  const configFile = path.join(dir, 'c.yml');
  fs.writeFileSync(configFile, yaml.dump({ stream: raw }));
  const s = createStream({ config: streamSection.parse(raw), log: createLogger({ name: 't', level: 'silent' }) });
  const { url } = await s.start();
  const events: Record<string, unknown>[] = [];
  const controller = new AbortController();
  const res = await fetch(`${url}/api/events`, { signal: controller.signal });
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        for (const line of decoder.decode(chunk).split('\n')) if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as Record<string, unknown>);
      }
    } catch {
      // aborted at the end
    }
  })();
  try {
    writeMovie(path.join(data, 'a.mrc'));
    writeMovie(path.join(data, 'b.mrc'));
    await waitFor(() => s.ledger.counts().failed === 2, 10_000, 'both to fail');
    const status = sink();
    expect(await runCommand(['status'], configFile, status.stream)).toBe(0);
    expect(status.text()).toMatch(/2\/2 finished .* failed 2/);
    expect(status.text()).toContain('picky failed: exit code 1');
    const [a, b] = s.ledger.all();
    const out = sink();
    const err = sink();
    expect(await runCommand(['reject', String(b?.id), '--reason', 'ice too thick'], configFile, out.stream, err.stream)).toBe(0);
    expect(s.ledger.get(b?.id ?? 0)).toMatchObject({ state: 'rejected', reason: expect.stringContaining('ice too thick') as unknown });
    fs.writeFileSync(flag, '');
    expect(await runCommand(['retry', '--failed'], configFile, out.stream, err.stream)).toBe(0);
    await waitFor(() => s.ledger.get(a?.id ?? 0)?.state === 'done', 10_000, 'the retried movie');
    expect(await runCommand(['retry', String(a?.id)], configFile, out.stream, err.stream)).toBe(1);
    expect(err.text()).toContain('is done; retry applies to failed movies');
    expect(await runCommand(['requeue', String(b?.id)], configFile, out.stream, err.stream)).toBe(0);
    await waitFor(() => s.ledger.counts().done === 2, 10_000, 'the requeued movie');
    expect(await runCommand(['retry', 'abc'], configFile, out.stream, err.stream)).toBe(2);
    const api = (await (await fetch(`${url}/api/status`)).json()) as { counts: Record<string, number> };
    expect(api.counts).toMatchObject({ done: 2, failed: 0 });
    await waitFor(() => events.filter((e) => e.type === 'done').length === 2, 5000, 'done events');
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['queued', 'step', 'failed', 'done']));
  } finally {
    controller.abort();
    await s.stop();
  }
});
