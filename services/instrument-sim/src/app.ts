/**
 * The simulated microscope control PC: the microscope state, the panel drawn from it, the VNC
 * server showing the panel and taking clicks and keys, the read-only state API, and (when
 * enabled) the detector writing a movie per exposure.
 */
import http from 'node:http';
import { closeServer, listen, type Logger } from '@cloudlet/core';
import { createApi, type StateApi } from './api';
import type { SimConfig } from './config';
import { createDetector, type Detector } from './detector';
import { createInputHandler } from './input';
import { ControlPanel } from './panel';
import { RfbServer, type RfbStats } from './rfb-server';
import { MicroscopeState } from './state';

export interface SimulatorDeps {
  config: SimConfig;
  log: Logger;
  /** The VNC password; main reads it from config.password_file. */
  password: string;
  /** Tests shorten the /events heartbeat. */
  heartbeatMs?: number;
  /** Tests lower this to reach the backpressure limit quickly. */
  maxBufferedBytes?: number;
}

export interface Simulator {
  readonly state: MicroscopeState;
  readonly panel: ControlPanel;
  /** Undefined unless `detector.enabled`. */
  readonly detector: Detector | undefined;
  start(): Promise<{ vncPort: number; apiPort: number }>;
  stop(): Promise<void>;
  vncStats(): RfbStats;
}

export function createSimulator(deps: SimulatorDeps): Simulator {
  const { config, log } = deps;
  const state = new MicroscopeState({ exposureIntervalMs: config.exposure_interval_s * 1000 });
  const panel = new ControlPanel({ width: config.width, height: config.height, title: config.name });
  panel.render(state.snapshot());
  const rfb = new RfbServer({
    framebuffer: panel.framebuffer,
    name: config.name,
    password: deps.password,
    log: log.child({ component: 'vnc' }),
    input: createInputHandler({ state, layout: panel.layout, log }),
    maxBufferedBytes: deps.maxBufferedBytes,
  });
  // Changes that arrive together (a burst of key repeats in one TCP chunk) are drawn once.
  let redraw: NodeJS.Immediate | undefined;
  const onChange = (): void => {
    redraw ??= setImmediate(() => {
      redraw = undefined;
      rfb.invalidate(panel.render(state.snapshot()));
    });
  };
  const detector = config.detector.enabled ? createDetector({ config: config.detector, state, log: log.child({ component: 'detector' }) }) : undefined;
  let api: StateApi | undefined;
  let httpServer: http.Server | undefined;

  return {
    state,
    panel,
    detector,
    vncStats: () => rfb.stats(),
    async start() {
      state.on('change', onChange);
      api = createApi({ state, log: log.child({ component: 'api' }), vncStats: () => rfb.stats(), layout: () => ({ width: config.width, height: config.height, controls: panel.layout.controls }), heartbeatMs: deps.heartbeatMs });
      httpServer = http.createServer(api.app);
      const vncPort = await rfb.listen(config.listen_host, config.vnc_port);
      const apiPort = (await listen(httpServer, config.api_host, config.api_port)).port;
      await detector?.start();
      return { vncPort, apiPort };
    },
    async stop() {
      state.off('change', onChange);
      await detector?.stop();
      state.stop();
      if (redraw) clearImmediate(redraw);
      redraw = undefined;
      api?.close();
      await Promise.all([rfb.close(), httpServer?.listening ? closeServer(httpServer) : undefined]);
    },
  };
}
