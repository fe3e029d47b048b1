// A minimal noVNC-like client for the benches: WebSocket, RFB 3.8, VNC auth, then raw bytes.
'use strict';
const path = require('node:path');
const WsClient = require(path.join(__dirname, '..', '..', 'node_modules', 'ws'));
const { vncAuthResponse } = require(path.join(__dirname, '..', '..', 'services', 'core', 'dist', 'rfb-auth.js'));

const ORIGIN = 'http://bench.local';

function connect(url, password) {
  return new Promise((resolve, reject) => {
    const ws = new WsClient(url, ['binary'], { origin: ORIGIN, perMessageDeflate: false });
    let buf = Buffer.alloc(0);
    let stage = 0;
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused ${res.statusCode}`)));
    const onMessage = (data) => {
      buf = Buffer.concat([buf, data]);
      if (stage === 0 && buf.length >= 12) { buf = buf.subarray(12); ws.send(Buffer.from('RFB 003.008\n')); stage = 1; }
      if (stage === 1 && buf.length >= 2) { buf = buf.subarray(1 + buf[0]); ws.send(Buffer.from([2])); stage = 2; }
      if (stage === 2 && buf.length >= 16) { ws.send(vncAuthResponse(buf.subarray(0, 16), password)); buf = buf.subarray(16); stage = 3; }
      if (stage === 3 && buf.length >= 4) {
        if (buf.readUInt32BE(0) !== 0) { reject(new Error('auth failed')); return; }
        buf = buf.subarray(4);
        ws.send(Buffer.from([1]));
        stage = 4;
      }
      if (stage === 4 && buf.length >= 24 && buf.length >= 24 + buf.readUInt32BE(20)) {
        const rest = buf.subarray(24 + buf.readUInt32BE(20));
        ws.off('message', onMessage);
        resolve({ ws, early: rest });
      }
    };
    ws.on('message', onMessage);
  });
}

module.exports = { connect, ORIGIN };
