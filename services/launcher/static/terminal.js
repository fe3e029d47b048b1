// The browser half of the session terminal (see src/terminal.ts): xterm.js bound to a WebSocket
// that presents the page's one-time ticket as a subprotocol, so it never enters a URL.
import { Terminal } from './xterm.mjs';
import { FitAddon } from './addon-fit.mjs';

const host = document.getElementById('terminal');
const status = document.getElementById('terminal-status');
const { ws: url, ticket } = host.dataset;

const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontFamily: 'DejaVu Sans Mono, monospace' });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(host);
fit.fit();

const ws = new WebSocket(url, ['cloudlet-terminal', `ticket.${ticket}`]);
const send = (message) => {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
};
const resize = () => {
  fit.fit();
  send({ type: 'resize', cols: term.cols, rows: term.rows });
};

ws.addEventListener('open', () => {
  status.textContent = 'Connected';
  status.dataset.state = 'open';
  resize();
  term.focus();
});
ws.addEventListener('message', (event) => term.write(event.data));
ws.addEventListener('close', (event) => {
  status.textContent = `Disconnected: ${event.reason || 'the connection was refused or lost'}`;
  status.dataset.state = 'closed';
  term.write(`\r\n\x1b[2m[${event.reason || 'disconnected'}]\x1b[0m\r\n`);
});
term.onData((data) => send({ type: 'input', data }));
window.addEventListener('resize', resize);
