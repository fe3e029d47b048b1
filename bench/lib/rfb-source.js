// The RFB-like source both relays are measured against: a real TCP server that does the RFB 3.8
// handshake with VNC auth, then, per connection, one of: stay idle, flood framebuffer-sized
// bytes, echo each 16 bytes back, or count bytes received. Mode comes from the password used,
// so one server serves every measurement.
'use strict';
const net = require('node:net');
const path = require('node:path');
const { vncAuthMatches, vncChallenge } = require(path.join(__dirname, '..', '..', 'services', 'core', 'dist', 'rfb-auth.js'));

const MODES = ['idle', 'flood', 'echo', 'sink'];

function startSource() {
  const stats = { received: 0, floodWritten: 0, onReceived: null };
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    const challenge = vncChallenge();
    let stage = 0;
    let mode = 'idle';
    let buf = Buffer.alloc(0);
    socket.write('RFB 003.008\n');
    socket.on('data', (chunk) => {
      if (stage === 4) return serve(chunk);
      buf = Buffer.concat([buf, chunk]);
      if (stage === 0 && buf.length >= 12) { buf = buf.subarray(12); socket.write(Buffer.from([1, 2])); stage = 1; }
      if (stage === 1 && buf.length >= 1) { buf = buf.subarray(1); socket.write(challenge); stage = 2; }
      if (stage === 2 && buf.length >= 16) {
        const response = buf.subarray(0, 16);
        buf = buf.subarray(16);
        const found = MODES.find((m) => vncAuthMatches(challenge, response, `src-${m}`.slice(0, 8)));
        if (!found) { socket.end(Buffer.from([0, 0, 0, 1, 0, 0, 0, 4, 0x6e, 0x6f, 0x70, 0x65])); return; }
        mode = found;
        socket.write(Buffer.from([0, 0, 0, 0]));
        stage = 3;
      }
      if (stage === 3 && buf.length >= 1) {
        buf = buf.subarray(1);
        stage = 4;
        const init = Buffer.alloc(24 + 6);
        init.writeUInt16BE(1024, 0);
        init.writeUInt16BE(768, 2);
        init.writeUInt32BE(6, 20);
        init.write('source', 24);
        socket.write(init);
        if (mode === 'flood') flood(socket);
        if (buf.length > 0) serve(buf);
      }
    });
    function serve(chunk) {
      if (mode === 'echo') socket.write(chunk);
      if (mode === 'sink') { stats.received += chunk.length; stats.onReceived?.(stats.received); }
    }
  });
  function flood(socket) {
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    // Per connection, so a browser that never reads can cost a relay without backpressure at
    // most this much memory, and the machine stays usable.
    const limit = Number(process.env.BENCH_FLOOD_LIMIT ?? 2 * 1024 * 1024 * 1024);
    let written = 0;
    const pump = () => {
      while (!socket.destroyed && written < limit) {
        written += chunk.length;
        stats.floodWritten += chunk.length;
        if (!socket.write(chunk)) { socket.once('drain', pump); return; }
      }
    };
    pump();
  }
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    stats,
    close() { for (const s of sockets) s.destroy(); server.close(); },
  })));
}

/** The 8-character VNC password that selects a mode. */
function modePassword(mode) {
  return `src-${mode}`.slice(0, 8);
}

module.exports = { startSource, modePassword };
