/**
 * One browser connection: RFB toward the browser (VNC auth against the session's secrets,
 * OOD's #password= flow), a fresh upstream connection to the instrument per browser (sharing
 * one would break zlib state, CopyRect and cursors), then two pumps: instrument -> browser
 * untouched but with backpressure, browser -> instrument through the message filter.
 */
import type net from 'node:net';
import type { WebSocket } from 'ws';
import { AppError, errorMessage, vncChallenge } from '@cloudlet/core';
import { ByteReader } from './byte-reader';
import { ClientMessageFilter, keyEvent, pointerEvent, ProtocolViolation } from './rfb-filter';
import type { RelaySession } from './sessions';
import { connectUpstream, type UpstreamTarget } from './upstream';

export type Privilege = 'control' | 'view';

export interface ConnectionDeps {
  /** Resolves the instrument's VNC target, or throws an AppError whose publicMessage the browser sees. */
  upstreamTarget(): UpstreamTarget;
  onUpstreamAuthFailure(err: Error, instrumentId: string): void;
  mayControl(session: RelaySession): boolean;
  joinedControl(session: RelaySession): void;
  maxBufferedBytes: number;
  idleTimeoutMs: number;
  pingIntervalMs: number;
  audit(event: string, fields: Record<string, unknown>): void;
}

export const CLOSE = { idle: 4000, expired: 4001, protocol: 4002, handover: 4003, shutdown: 1001 } as const;

export class BrowserConnection {
  privilege: Privilege | undefined;
  readonly startedAt = Date.now();
  bytesUp = 0;
  bytesDown = 0;
  private upstream: net.Socket | undefined;
  private upstreamData: ((fn: (chunk: Buffer) => void) => void) | undefined;
  private recycle: (chunk: Buffer) => void = () => undefined;
  private filter: ClientMessageFilter | undefined;
  private readonly heldKeys = new Set<number>();
  private pointer = { x: 0, y: 0, mask: 0 };
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActivity = Date.now();
  private pingTimer: NodeJS.Timeout | undefined;
  private alive = true;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    readonly session: RelaySession,
    readonly remote: string,
    private readonly deps: ConnectionDeps,
  ) {}

  async run(): Promise<void> {
    const reader = new ByteReader(4096);
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      if (!isBinary) {
        this.close(CLOSE.protocol, 'binary frames only');
        return;
      }
      this.touch();
      reader.push(data);
    };
    this.ws.on('message', onMessage);
    this.ws.once('close', () => {
      reader.fail(new Error('browser went away'));
      this.close();
    });
    this.ws.on('error', () => this.close());
    this.ws.on('pong', () => {
      this.alive = true;
    });
    this.pingTimer = setInterval(() => {
      if (!this.alive) {
        this.ws.terminate();
        return;
      }
      this.alive = false;
      this.ws.ping();
    }, this.deps.pingIntervalMs);
    this.touch();

    try {
      await this.handshake(reader);
    } catch (err) {
      if (!this.closed) this.close(CLOSE.protocol, err instanceof AppError ? err.publicMessage.slice(0, 120) : 'handshake failed');
      return;
    } finally {
      this.ws.off('message', onMessage);
    }
    this.pump(reader.drain());
  }

  /** Called when this session loses control: release whatever it still holds down upstream. */
  releaseInput(): void {
    if (!this.upstream) return;
    for (const keysym of this.heldKeys) this.upstream.write(keyEvent(false, keysym));
    this.heldKeys.clear();
    if (this.pointer.mask !== 0) this.upstream.write(pointerEvent(this.pointer.x, this.pointer.y, 0));
    this.pointer.mask = 0;
  }

  close(code?: number, reason?: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    clearInterval(this.pingTimer);
    this.upstream?.destroy();
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code ?? 1000, reason);
    else this.ws.terminate();
    this.session.connections.delete(this);
    this.deps.audit('disconnect', { ...this.auditFields(), reason: reason ?? 'closed', bytes_up: this.bytesUp, bytes_down: this.bytesDown, duration_s: Math.round((Date.now() - this.startedAt) / 1000), dropped_input: this.filter?.dropped.input ?? 0, dropped_xvp: this.filter?.dropped.xvp ?? 0 });
    this.session.onConnectionClosed(this);
  }

  auditFields(): Record<string, unknown> {
    return { user: this.session.username, session: this.session.id, instrument: this.session.instrument.id, role: this.privilege, remote: this.remote };
  }

  /** A timestamp per message; one timer per connection checks it (cheaper than re-arming a timer per frame). */
  private touch(): void {
    this.lastActivity = Date.now();
    if (this.idleTimer) return;
    const check = (): void => {
      const idleFor = Date.now() - this.lastActivity;
      if (idleFor >= this.deps.idleTimeoutMs) this.close(CLOSE.idle, 'idle timeout');
      else this.idleTimer = setTimeout(check, this.deps.idleTimeoutMs - idleFor);
    };
    this.idleTimer = setTimeout(check, this.deps.idleTimeoutMs);
  }

  private send(data: Buffer): void {
    this.ws.send(data, { binary: true });
  }

  private async handshake(reader: ByteReader): Promise<void> {
    this.send(Buffer.from('RFB 003.008\n'));
    const version = (await reader.read(12)).toString('latin1');
    const match = /^RFB 003\.00([378])\n$/.exec(version);
    if (!match) throw new AppError(`browser sent version ${JSON.stringify(version)}`, { code: 'rfb_protocol', status: 400, publicMessage: 'Unsupported RFB version' });
    const v38 = match[1] === '8';
    if (match[1] === '3') {
      this.send(u32(2));
    } else {
      this.send(Buffer.from([1, 2]));
      if ((await reader.readU8()) !== 2) throw new AppError('browser chose a security type we did not offer', { code: 'rfb_protocol', status: 400, publicMessage: 'Unsupported security type' });
    }
    const challenge = vncChallenge();
    this.send(challenge);
    const response = await reader.read(16);
    this.privilege = this.session.authenticate(challenge, response);
    if (!this.privilege) {
      this.deps.audit('auth_failed', this.auditFields());
      this.refuse(v38, 'Authentication failed');
      throw new AppError('wrong session secret', { code: 'auth_failed', status: 401, publicMessage: 'Authentication failed' });
    }

    let target: UpstreamTarget;
    let upstream;
    try {
      target = this.deps.upstreamTarget();
      upstream = await connectUpstream(target);
    } catch (err) {
      if ((err as AppError).code === 'upstream_auth_failed') this.deps.onUpstreamAuthFailure(err as Error, this.session.instrument.id);
      const message = err instanceof AppError ? err.publicMessage : 'The instrument cannot be reached right now.';
      this.deps.audit('refused', { ...this.auditFields(), reason: err instanceof AppError ? err.code : errorMessage(err) });
      this.refuse(v38, message);
      throw err;
    }
    if (this.closed) {
      upstream.socket.destroy();
      throw new Error('browser left during the handshake');
    }
    this.upstream = upstream.socket;
    this.upstreamData = (fn) => upstream.onData(fn);
    this.recycle = (chunk) => upstream.recycle(chunk);
    this.send(u32(0));
    await reader.read(1); // ClientInit: upstream is always shared, whatever the browser asked
    this.send(upstream.serverInit);
    if (upstream.leftover.length > 0) this.forwardDown(upstream.leftover);
    this.deps.audit('connect', this.auditFields());
    if (this.privilege === 'control') this.deps.joinedControl(this.session);
  }

  private refuse(v38: boolean, reason: string): void {
    if (v38) {
      const text = Buffer.from(reason, 'utf8');
      this.send(Buffer.concat([u32(1), u32(text.length), text]));
    } else {
      this.send(u32(1));
    }
  }

  private pump(early: Buffer): void {
    const upstream = this.upstream as net.Socket;
    this.filter = new ClientMessageFilter({
      mayControl: () => this.privilege === 'control' && this.deps.mayControl(this.session),
      onKey: (down, keysym) => (down ? this.heldKeys.add(keysym) : this.heldKeys.delete(keysym)),
      onPointer: (x, y, mask) => {
        this.pointer = { x, y, mask };
      },
    });
    const up = (data: Buffer): void => {
      let forward: Buffer;
      try {
        forward = (this.filter as ClientMessageFilter).push(data);
      } catch (err) {
        this.deps.audit('protocol_violation', { ...this.auditFields(), reason: err instanceof ProtocolViolation ? err.message : 'error' });
        this.close(CLOSE.protocol, 'protocol violation');
        return;
      }
      if (forward.length === 0) return;
      this.bytesUp += forward.length;
      if (!upstream.write(forward)) {
        this.ws.pause();
        upstream.once('drain', () => this.ws.resume());
      }
    };
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.close(CLOSE.protocol, 'binary frames only');
        return;
      }
      this.touch();
      up(data);
    });
    if (early.length > 0) up(early);
    this.upstreamData?.((chunk) => this.forwardDown(chunk));
    upstream.on('error', () => this.close(CLOSE.shutdown, 'instrument connection lost'));
    upstream.on('close', () => this.close(CLOSE.shutdown, 'instrument connection closed'));
  }

  /**
   * Instrument -> browser. A browser that stops reading stops the relay reading the instrument:
   * what waits for it is bounded by max_buffered_bytes, not by the browser's goodwill.
   */
  private forwardDown(chunk: Buffer): void {
    this.bytesDown += chunk.length;
    this.ws.send(chunk, SEND_BINARY, (err) => {
      if (!err) this.recycle(chunk);
    });
    const upstream = this.upstream;
    if (upstream && this.ws.bufferedAmount > this.deps.maxBufferedBytes && !upstream.isPaused()) {
      upstream.pause();
      this.resumeWhenDrained(upstream);
    }
  }

  private resumeWhenDrained(upstream: net.Socket): void {
    // ws exposes no drain event of its own; its socket's is the moment the queue moved.
    const socket = (this.ws as unknown as { _socket?: net.Socket })._socket;
    const check = (): void => {
      if (this.closed) return;
      if (this.ws.bufferedAmount <= this.deps.maxBufferedBytes / 2) upstream.resume();
      else if (socket) socket.once('drain', check);
      else setTimeout(check, 10);
    };
    if (socket) socket.once('drain', check);
    else setTimeout(check, 10);
  }
}

const SEND_BINARY = { binary: true } as const;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}
