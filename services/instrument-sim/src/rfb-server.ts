/** The VNC server of the simulated control PC: many clients at once, all seeing one framebuffer. */
import net from 'node:net';
import type { Logger } from '@cloudlet/core';
import type { Framebuffer } from './framebuffer';
import type { Rect } from './region';
import { RfbConnection, type RfbInputHandler } from './rfb-connection';

export interface RfbServerOptions {
  framebuffer: Framebuffer;
  name: string;
  password: string;
  log: Logger;
  input: RfbInputHandler;
  /** Above this many queued bytes a client gets no new update until its socket drains. */
  maxBufferedBytes?: number;
  /** From connect to ClientInit; a client that stalls in the handshake is dropped. */
  handshakeTimeoutMs?: number;
}

export interface RfbStats {
  /** Open connections, authenticated or not. */
  clients: number;
  /** Bytes queued in the server for all clients together. */
  bufferedBytes: number;
  /** Clients with a FramebufferUpdateRequest not yet answered. */
  waitingRequests: number;
  updatesSent: number;
  messagesReceived: number;
}

export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export class RfbServer {
  private readonly server: net.Server;
  private readonly connections = new Set<RfbConnection>();
  private nextId = 1;

  constructor(private readonly options: RfbServerOptions) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Resolves with the bound port once connections are accepted. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Tells every client these rectangles of the framebuffer changed. */
  invalidate(rects: readonly Rect[]): void {
    if (rects.length === 0) return;
    for (const c of this.connections) c.invalidate(rects);
  }

  stats(): RfbStats {
    const stats: RfbStats = { clients: 0, bufferedBytes: 0, waitingRequests: 0, updatesSent: 0, messagesReceived: 0 };
    for (const c of this.connections) {
      const s = c.stats();
      stats.clients++;
      stats.bufferedBytes += s.bufferedBytes;
      if (s.waiting) stats.waitingRequests++;
      stats.updatesSent += s.updatesSent;
      stats.messagesReceived += s.messagesReceived;
    }
    return stats;
  }

  /** Stops accepting, drops every client, and resolves once the listener is closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      for (const c of this.connections) c.abort();
    });
  }

  private accept(socket: net.Socket): void {
    const { framebuffer, name, password, log, input } = this.options;
    const connection = new RfbConnection(this.nextId++, socket, {
      framebuffer,
      name,
      password,
      log,
      input,
      maxBufferedBytes: this.options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    });
    this.connections.add(connection);
    socket.once('close', () => {
      this.connections.delete(connection);
      log.info({ client: connection.id }, 'vnc client disconnected');
    });
  }
}
