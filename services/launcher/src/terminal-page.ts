/**
 * What a page needs to show a session terminal: the static assets (xterm.js from its npm
 * package, our small module) and the HTML fragment that hosts it. The portal, which shares no
 * code with the launcher, writes the same markup in its own view and fetches these assets over
 * the API (`/api/terminal-assets`) to serve them from its own origin.
 */
import path from 'node:path';
import express, { type Router } from 'express';

const STATIC_DIR = path.join(__dirname, '..', 'static');

function packageFile(spec: string): string {
  return require.resolve(spec);
}

/** Serves the assets under `${mount}/`: xterm.mjs, xterm.css, addon-fit.mjs, terminal.js. */
export function terminalAssets(): Router {
  const router = express.Router();
  const files: Record<string, string> = {
    'xterm.mjs': packageFile('@xterm/xterm/lib/xterm.mjs'),
    'xterm.css': packageFile('@xterm/xterm/css/xterm.css'),
    'addon-fit.mjs': packageFile('@xterm/addon-fit/lib/addon-fit.mjs'),
    'terminal.js': path.join(STATIC_DIR, 'terminal.js'),
  };
  for (const [name, file] of Object.entries(files)) {
    router.get(`/${name}`, (_req, res) => {
      res.type(name.endsWith('.css') ? 'text/css' : 'text/javascript').sendFile(file);
    });
  }
  return router;
}

function escapeAttr(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The terminal's HTML: `assets` is where terminalAssets() is mounted, `wsUrl` the session's terminal URL. */
export function terminalFragment(o: { assets: string; wsUrl: string; ticket: string }): string {
  return [
    `<link rel="stylesheet" href="${escapeAttr(o.assets)}/xterm.css">`,
    `<p id="terminal-status" role="status" data-state="connecting">Connecting...</p>`,
    `<div id="terminal" style="height: 70vh" data-ws="${escapeAttr(o.wsUrl)}" data-ticket="${escapeAttr(o.ticket)}"></div>`,
    `<script type="module" src="${escapeAttr(o.assets)}/terminal.js"></script>`,
  ].join('\n');
}
