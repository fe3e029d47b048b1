// The instrument page: noVNC connected to this person's relay session, and control hand-over.
import RFB from '/static/novnc/core/rfb.js';

const screen = document.getElementById('screen');
const { wsUrl, password, mode, instrument, csrf } = screen.dataset;
const statusEl = document.getElementById('control-status');
const buttons = {
  request: document.getElementById('request-control'),
  release: document.getElementById('release-control'),
  take: document.getElementById('take-control'),
};
let connected = false;
let holds = false;

const rfb = new RFB(screen, wsUrl, { credentials: { password }, wsProtocols: ['binary'] });
rfb.scaleViewport = true;
rfb.viewOnly = true; // until the relay says this session holds control
rfb.addEventListener('connect', () => {
  connected = true;
  refresh();
});
rfb.addEventListener('disconnect', (e) => {
  connected = false;
  statusEl.textContent = e.detail.clean ? 'Disconnected.' : 'Connection lost. Reload the page to reconnect.';
  for (const b of Object.values(buttons)) if (b) b.hidden = true;
});
rfb.addEventListener('securityfailure', (e) => {
  statusEl.textContent = `Refused: ${e.detail.reason || 'authentication failed'}`;
});

function show(control) {
  holds = mode === 'control' && control.you_hold;
  rfb.viewOnly = !holds;
  screen.classList.toggle('in-control', holds);
  if (mode !== 'control') {
    statusEl.textContent = connected ? `Watching. ${control.holder ? `${control.holder} has control.` : 'Nobody has control.'}` : 'Connecting…';
    return;
  }
  if (!connected) return;
  statusEl.textContent = holds ? 'You have control.' : control.holder ? `${control.holder} has control.${control.you_requested ? ' You asked for it.' : ''}` : 'Nobody has control.';
  buttons.request.hidden = holds || control.you_requested;
  buttons.release.hidden = !holds;
  buttons.take.hidden = holds;
  document.getElementById('requests').textContent = holds && control.requests.length > 0 ? `Waiting: ${control.requests.join(', ')}` : '';
  renderGrants(holds ? control.requests : []);
}

function renderGrants(requests) {
  const box = document.getElementById('requests');
  for (const name of requests) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'button small';
    b.textContent = `Give control to ${name}`;
    b.addEventListener('click', () => act('grant', name));
    box.append(' ', b);
  }
}

async function refresh() {
  const res = await fetch(`/instruments/${encodeURIComponent(instrument)}/status`, { headers: { accept: 'application/json' } });
  if (res.ok) show((await res.json()).control);
  else statusEl.textContent = (await res.json().catch(() => ({}))).message ?? 'Session ended.';
}

async function act(action, to) {
  const res = await fetch(`/instruments/${encodeURIComponent(instrument)}/control`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, accept: 'application/json' },
    body: JSON.stringify({ action, to }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.ok) show(body.control);
  else statusEl.textContent = body.message ?? 'That did not work.';
}

for (const [action, button] of Object.entries(buttons)) button?.addEventListener('click', () => act(action));
setInterval(() => connected && refresh(), 2000);
