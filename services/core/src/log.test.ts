import { Writable } from 'node:stream';
import { originAllowed } from './http';
import { createLogger, urlWithoutQuery } from './log';

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

describe('logging', () => {
  test('secrets are redacted wherever a caller puts them', async () => {
    const { lines, stream } = capture();
    const log = createLogger({ name: 't', destination: stream });
    log.info({ password: 'p1', client_secret: 'c1', req: { headers: { cookie: 'sid=abc', authorization: 'Bearer t' } }, nested: { token: 't2' } }, 'hello');
    await new Promise((resolve) => setImmediate(resolve));
    const text = JSON.stringify(lines);
    for (const secret of ['p1', 'c1', 'sid=abc', 'Bearer t', 't2']) expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'hello', service: 't' });
  });

  test('URLs lose their query string and fragment', () => {
    expect(urlWithoutQuery('/auth/callback?code=secret&state=s')).toBe('/auth/callback');
    expect(urlWithoutQuery('/vnc#password=x')).toBe('/vnc');
    expect(urlWithoutQuery(undefined)).toBe('');
  });
});

describe('originAllowed', () => {
  const allowed = ['https://cloudlet.example.org', 'http://127.0.0.1:8080'];
  test.each([
    ['https://cloudlet.example.org', true],
    ['https://cloudlet.example.org:443', true],
    ['http://127.0.0.1:8080', true],
    ['https://evil.example.org', false],
    ['https://cloudlet.example.org.evil.org', false],
    ['http://cloudlet.example.org', false],
    ['null', false],
    [undefined, false],
  ])('%s -> %s', (origin, expected) => {
    expect(originAllowed(origin, allowed)).toBe(expected);
  });
});
