/**
 * Alarm delivery to real receivers on loopback: an HTTP webhook receiver and an SMTP server
 * (npm smtp-server, a complete SMTP implementation). Receivers that are down keep the alarm in
 * the outbox, across a restart, until they come back.
 */
import http from 'node:http';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { closeServer, createLogger, listen } from '@cloudlet/core';
import { freePort, tempDir, waitFor } from '@cloudlet/core/testing';
import { AlarmOutbox, type AlarmEvent, emailChannel, webhookChannel } from './alarms';

jest.setTimeout(60_000);
const log = createLogger({ name: 'test', level: 'silent' });
const EVENT: AlarmEvent = { type: 'fired', rule: 'CTF fit worse than 5 A for 3 movies in a row', message: 'FoilHole_1_Data_2.tiff: CTF fit 8.0 A', at: Date.parse('2026-11-22T03:00:00Z') };

interface Received {
  webhook: unknown[];
  mail: string[];
}

async function startWebhook(port: number, received: Received, answer = 200): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (answer === 200) received.webhook.push({ type: req.headers['content-type'], body: JSON.parse(body) as unknown });
      res.writeHead(answer).end();
    });
  });
  await listen(server, '127.0.0.1', port);
  return server;
}

async function startSmtp(port: number, received: Received): Promise<SMTPServer> {
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      let text = '';
      stream.on('data', (c: Buffer) => (text += c.toString()));
      stream.on('end', () => {
        received.mail.push(text);
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(port, '127.0.0.1', resolve));
  return smtp;
}

test('an alarm reaches a real webhook receiver and a real SMTP server', async () => {
  const received: Received = { webhook: [], mail: [] };
  const [webPort, smtpPort] = [await freePort(), await freePort()];
  const web = await startWebhook(webPort, received);
  const smtp = await startSmtp(smtpPort, received);
  const outbox = new AlarmOutbox(path.join(tempDir(), 'alarms.sqlite'), [webhookChannel(`http://127.0.0.1:${webPort}/hook`), await emailChannel({ smtp_host: '127.0.0.1', smtp_port: smtpPort, secure: false, from: 'cloudlet@krios.example', to: ['ada@example.org'] })], { session: 'krios-1 ada', retryMs: 100, maxBackoffMs: 1000, log });
  try {
    outbox.post(EVENT);
    await waitFor(() => received.webhook.length === 1 && received.mail.length === 1, 20_000, 'both deliveries');
    expect(received.webhook[0]).toEqual({ type: 'application/json', body: { text: ':rotating_light: krios-1 ada: ALARM: CTF fit worse than 5 A for 3 movies in a row. FoilHole_1_Data_2.tiff: CTF fit 8.0 A' } });
    expect(received.mail[0]).toMatch(/Subject: \[cloudlet\] krios-1 ada: ALARM: CTF fit worse than 5 A/);
    expect(received.mail[0]).toMatch(/To: ada@example\.org/);
    expect(received.mail[0]).toMatch(/FoilHole_1_Data_2\.tiff: CTF fit 8\.0 A/);
    await waitFor(() => outbox.pending().length === 0, 5000, 'an empty outbox');
  } finally {
    await outbox.close();
    await closeServer(web);
    await new Promise<void>((resolve) => smtp.close(() => resolve()));
  }
});

test('receivers that are down or failing keep the alarm, across a restart, until they take it', async () => {
  const received: Received = { webhook: [], mail: [] };
  const [webPort, smtpPort] = [await freePort(), await freePort()];
  const file = path.join(tempDir(), 'alarms.sqlite');
  const channels = async () => [webhookChannel(`http://127.0.0.1:${webPort}/hook`), await emailChannel({ smtp_host: '127.0.0.1', smtp_port: smtpPort, secure: false, from: 'cloudlet@krios.example', to: ['ada@example.org'] })];
  const options = { session: 'krios-1 ada', retryMs: 100, maxBackoffMs: 400, log };

  // Nothing listens on either port; then a webhook that answers 500.
  const first = new AlarmOutbox(file, await channels(), options);
  first.post(EVENT);
  await first.flush();
  const failing = await startWebhook(webPort, received, 500);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await first.flush();
  const kept = first.pending();
  expect(kept.map((p) => p.channel).sort()).toEqual(['email', 'webhook']);
  expect(kept.find((p) => p.channel === 'webhook')?.lastError).toMatch(/HTTP 500/);
  expect(kept.find((p) => p.channel === 'email')?.lastError).toMatch(/ECONNREFUSED/);
  expect(kept.every((p) => p.attempts >= 1)).toBe(true);
  await first.close();
  await closeServer(failing);

  // Restarted, with both receivers up: delivered exactly once each.
  const web = await startWebhook(webPort, received);
  const smtp = await startSmtp(smtpPort, received);
  const second = new AlarmOutbox(file, await channels(), options);
  try {
    second.start(100);
    await waitFor(() => second.pending().length === 0, 20_000, 'the kept alarms to be delivered');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received.webhook).toHaveLength(1);
    expect(received.mail).toHaveLength(1);
  } finally {
    await second.close();
    await closeServer(web);
    await new Promise<void>((resolve) => smtp.close(() => resolve()));
  }
});
