import crypto from 'node:crypto';
import { SseParser } from './sse';
import { knownHostKeys } from './ssh-control';

const STREAM = ': connected\n\ndata: {"type":"done","movie":{"id":1}}\n\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n: heartbeat\n\ndata:no-space\rid: 7\r\r';

describe('SseParser', () => {
  const expected = [
    { event: 'message', data: '{"type":"done","movie":{"id":1}}', id: undefined },
    { event: 'x', data: 'a\nb', id: undefined },
    { event: 'message', data: 'no-space', id: '7' },
  ];

  it('reads events with every line ending', () => {
    expect(new SseParser().feed(STREAM)).toEqual(expected);
  });

  it('resumes on partial input fed one character at a time', () => {
    const parser = new SseParser();
    const out = [...STREAM].flatMap((c) => parser.feed(c));
    expect(out).toEqual(expected);
  });

  it('holds an event back until its blank line', () => {
    const parser = new SseParser();
    expect(parser.feed('data: x\n')).toEqual([]);
    expect(parser.feed('\n')).toEqual([{ event: 'message', data: 'x', id: undefined }]);
  });
});

describe('knownHostKeys', () => {
  const a = crypto.randomBytes(51).toString('base64');
  const b = crypto.randomBytes(51).toString('base64');
  const c = crypto.randomBytes(51).toString('base64');
  const salt = crypto.randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${crypto.createHmac('sha1', salt).update('[10.0.0.9]:2222').digest('base64')}`;
  const text = [
    '# comment',
    `[127.0.0.1]:2222 ssh-ed25519 ${a}`,
    `127.0.0.1 ssh-ed25519 ${b}`,
    `${hashed} ssh-ed25519 ${c}`,
    `*.example.org,!bad.example.org ssh-ed25519 ${b}`,
    `@revoked * ssh-ed25519 ${c}`,
    `@cert-authority * ssh-ed25519 ${a}`,
  ].join('\n');

  it('picks keys by [host]:port, plain host for port 22, hashed names and patterns', () => {
    expect(knownHostKeys(text, '127.0.0.1', 2222).accepted.map((k) => k.toString('base64'))).toEqual([a]);
    expect(knownHostKeys(text, '127.0.0.1', 22).accepted.map((k) => k.toString('base64'))).toEqual([b]);
    expect(knownHostKeys(text, '10.0.0.9', 2222).accepted.map((k) => k.toString('base64'))).toEqual([c]);
    expect(knownHostKeys(text, 'x.example.org', 22).accepted.map((k) => k.toString('base64'))).toEqual([b]);
    expect(knownHostKeys(text, 'bad.example.org', 22).accepted).toEqual([]);
    expect(knownHostKeys(text, 'other', 22).accepted).toEqual([]);
    expect(knownHostKeys(text, 'other', 22).revoked.map((k) => k.toString('base64'))).toEqual([c]);
  });
});
