// A TCP proxy on loopback that holds every chunk for `oneWayMs` in each direction, so a round
// trip gains 2 x oneWayMs. It runs as a child process (`node delay-proxy.js PORT MS` prints the
// port it listens on), so the event loop of whatever is measured cannot hold it up. `tc netem` is missing on this kernel (DESIGN.md section 8), so this is
// how the bench puts a WAN's latency between ssh and sshd. Order is kept per direction because
// every chunk waits the same time; back-pressure is the socket's own (no window is emulated).
'use strict';
const { spawn } = require('node:child_process');
const net = require('node:net');

function delayedPipe(from, to, oneWayMs) {
  from.on('data', (chunk) => {
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, oneWayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), oneWayMs));
  from.on('error', () => to.destroy());
}

async function listenDelayed(targetPort, oneWayMs) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    delayedPipe(client, upstream, oneWayMs);
    delayedPipe(upstream, client, oneWayMs);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The proxy in a child process; resolves once it listens. */
function startDelayProxy(targetPort, oneWayMs) {
  const child = spawn(process.execPath, [__filename, String(targetPort), String(oneWayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (!out.includes('\n')) return;
      resolve({
        port: Number(out.trim()),
        stop: () => new Promise((done) => {
          child.once('exit', () => done());
          child.kill('SIGTERM');
        }),
      });
    });
    child.once('exit', (code) => reject(new Error(`delay proxy exited (${code})`)));
  });
}

if (require.main === module) {
  listenDelayed(Number(process.argv[2]), Number(process.argv[3])).then(({ port }) => process.stdout.write(`${port}\n`));
}

module.exports = { startDelayProxy };
