/**
 * One VNC client: the RFB 3.3/3.7/3.8 handshake with VNC authentication, then client messages
 * and framebuffer updates. Phases follow a whitelist of transitions, so a message can only be
 * acted on in the phase that expects it.
 *
 * Updates are pulled, never pushed: a request marks the area the client wants; changes collect
 * in a bounded dirty region; an update goes out only while the socket's queue is short. A client
 * that stops reading therefore holds at most one update plus `maxBufferedBytes`, however much
 * the screen changes or however many requests it sends.
 */
import type { Duplex } from 'node:stream';
import { type Logger, logError, vncAuthMatches, vncChallenge } from '@cloudlet/core';
import type { Framebuffer } from './framebuffer';
import { PixelEncoder, pixelFormatProblem, SERVER_PIXEL_FORMAT, writePixelFormat } from './pixel-format';
import { DirtyRegion, intersect, isEmpty, type Rect, bounds } from './region';
import { type ClientMessage, ClientMessageParser, RfbProtocolError } from './rfb-parser';

export type ConnectionPhase = 'version' | 'security' | 'auth' | 'client-init' | 'normal' | 'closed';

const TRANSITIONS: Record<ConnectionPhase, readonly ConnectionPhase[]> = {
  version: ['security', 'auth', 'closed'],
  security: ['auth', 'closed'],
  auth: ['client-init', 'closed'],
  'client-init': ['normal', 'closed'],
  normal: ['closed'],
  closed: [],
};

export type RfbVersion = '3.3' | '3.7' | '3.8';
export const SERVER_VERSION = 'RFB 003.008\n';
export const SECURITY_VNC_AUTH = 2;
export const AUTH_FAILED_REASON = 'Authentication failed';
const ENCODING_RAW = 0;
/** Nothing a client legitimately sends before ServerInit comes close to this. */
const MAX_HANDSHAKE_BYTES = 4096;
const EMPTY = Buffer.alloc(0);

/** What a connection needs of its socket; a net.Socket, or an in-memory stream in unit tests. */
export type RfbSocket = Duplex & {
  setNoDelay(noDelay?: boolean): unknown;
  readonly remoteAddress?: string | undefined;
};

export interface RfbInputHandler {
  pointer(client: number, x: number, y: number, mask: number, previousMask: number): void;
  key(client: number, down: boolean, keysym: number): void;
}

export interface ConnectionContext {
  framebuffer: Framebuffer;
  name: string;
  password: string;
  log: Logger;
  input: RfbInputHandler;
  maxBufferedBytes: number;
  handshakeTimeoutMs: number;
}

export interface ConnectionStats {
  phase: ConnectionPhase;
  bufferedBytes: number;
  waiting: boolean;
  updatesSent: number;
  messagesReceived: number;
}

export class RfbConnection {
  private phase: ConnectionPhase = 'version';
  private version: RfbVersion = '3.8';
  private handshake: Buffer = EMPTY;
  private readonly challenge = vncChallenge();
  private readonly parser = new ClientMessageParser();
  private encoder = new PixelEncoder(SERVER_PIXEL_FORMAT);
  private readonly dirty = new DirtyRegion();
  /** The area of the outstanding FramebufferUpdateRequest(s), if any. */
  private wanted: Rect | undefined;
  private buttons = 0;
  private updatesSent = 0;
  private messagesReceived = 0;
  private readonly log: Logger;
  private readonly handshakeTimer: NodeJS.Timeout;

  constructor(
    readonly id: number,
    private readonly socket: RfbSocket,
    private readonly ctx: ConnectionContext,
  ) {
    this.log = ctx.log.child({ client: id });
    socket.setNoDelay(true);
    // A deadline, not an idle timeout: a client dripping one byte at a time cannot stretch it,
    // and a refused client that never closes its end is cut off too.
    this.handshakeTimer = setTimeout(() => {
      if (this.phase !== 'closed') this.log.warn({ phase: this.phase }, 'vnc handshake timed out');
      this.abort();
    }, ctx.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.flush());
    socket.on('error', (err) => logError(this.log, err, 'vnc client socket error'));
    socket.on('close', () => {
      clearTimeout(this.handshakeTimer);
      this.to('closed');
    });
    socket.write(SERVER_VERSION);
  }

  stats(): ConnectionStats {
    return {
      phase: this.phase,
      bufferedBytes: this.socket.writableLength,
      waiting: this.wanted !== undefined,
      updatesSent: this.updatesSent,
      messagesReceived: this.messagesReceived,
    };
  }

  /** Marks `rects` changed and sends them if the client is waiting for them. */
  invalidate(rects: readonly Rect[]): void {
    if (this.phase === 'closed') return;
    for (const r of rects) this.dirty.add(intersect(r, this.ctx.framebuffer.bounds));
    this.flush();
  }

  abort(): void {
    this.to('closed');
    this.socket.destroy();
  }

  private to(next: ConnectionPhase): void {
    if (next === this.phase) return;
    if (!TRANSITIONS[this.phase].includes(next)) throw new Error(`RFB connection cannot go from ${this.phase} to ${next}`);
    this.phase = next;
  }

  private onData(chunk: Buffer): void {
    try {
      if (this.phase === 'normal') {
        this.parser.push(chunk, (m) => this.onMessage(m));
        return;
      }
      if (this.phase === 'closed') return;
      this.handshake = this.handshake.length > 0 ? Buffer.concat([this.handshake, chunk]) : chunk;
      if (this.handshake.length > MAX_HANDSHAKE_BYTES) throw new RfbProtocolError(`more than ${MAX_HANDSHAKE_BYTES} bytes before the handshake finished`);
      while (this.handshakeStep());
    } catch (err) {
      if (err instanceof RfbProtocolError) this.log.warn({ phase: this.phase, error: err.message }, 'vnc protocol error; closing');
      else logError(this.log, err, 'vnc client message failed; closing');
      this.abort();
    }
  }

  private take(n: number): Buffer | undefined {
    if (this.handshake.length < n) return undefined;
    const head = this.handshake.subarray(0, n);
    this.handshake = this.handshake.subarray(n);
    return head;
  }

  /** Runs one handshake step; false when it needs more bytes or the handshake is over. */
  private handshakeStep(): boolean {
    switch (this.phase) {
      case 'version': {
        const b = this.take(SERVER_VERSION.length);
        if (b) this.onVersion(b.toString('latin1'));
        return b !== undefined;
      }
      case 'security': {
        const b = this.take(1);
        if (b) this.onSecurityType(b.readUInt8(0));
        return b !== undefined;
      }
      case 'auth': {
        const b = this.take(16);
        if (b) this.onAuthResponse(b);
        return b !== undefined;
      }
      case 'client-init': {
        const b = this.take(1);
        if (b) this.onClientInit(b.readUInt8(0) !== 0);
        return b !== undefined;
      }
      default:
        return false;
    }
  }

  private onVersion(text: string): void {
    const version = parseVersion(text);
    if (!version) throw new RfbProtocolError(`unsupported protocol version ${JSON.stringify(text)}`);
    this.version = version;
    if (version === '3.3') {
      this.write(u32(SECURITY_VNC_AUTH), this.challenge);
      this.to('auth');
    } else {
      this.write(Buffer.from([1, SECURITY_VNC_AUTH]));
      this.to('security');
    }
  }

  private onSecurityType(type: number): void {
    if (type !== SECURITY_VNC_AUTH) {
      this.log.warn({ security_type: type }, 'vnc client chose a security type not offered');
      this.refuse('Security type not offered');
      return;
    }
    this.write(this.challenge);
    this.to('auth');
  }

  private onAuthResponse(response: Buffer): void {
    if (!vncAuthMatches(this.challenge, response, this.ctx.password)) {
      this.log.warn({ remote: this.socket.remoteAddress }, 'vnc authentication failed');
      this.refuse(AUTH_FAILED_REASON);
      return;
    }
    this.write(u32(0));
    this.to('client-init');
  }

  /** SecurityResult "failed"; only 3.8 carries a reason. Then the connection ends. */
  private refuse(reason: string): void {
    const why = Buffer.from(reason, 'utf8');
    if (this.version === '3.8') this.write(u32(1), u32(why.length), why);
    else this.write(u32(1));
    this.to('closed');
    this.socket.end();
  }

  private onClientInit(shared: boolean): void {
    const fb = this.ctx.framebuffer;
    const name = Buffer.from(this.ctx.name, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt16BE(fb.width, 0);
    head.writeUInt16BE(fb.height, 2);
    this.write(head, writePixelFormat(SERVER_PIXEL_FORMAT), u32(name.length), name);
    this.to('normal');
    clearTimeout(this.handshakeTimer);
    // Every client may connect at once whatever its shared flag: a training twin has no one to evict.
    this.log.info({ version: this.version, shared, remote: this.socket.remoteAddress }, 'vnc client connected');
    // A client may send its first messages right behind ClientInit, in the same chunk.
    const rest = this.handshake;
    this.handshake = EMPTY;
    if (rest.length > 0) this.parser.push(rest, (m) => this.onMessage(m));
  }

  private onMessage(m: ClientMessage): void {
    if (this.phase !== 'normal') return;
    this.messagesReceived++;
    switch (m.type) {
      case 'set-pixel-format': {
        const problem = pixelFormatProblem(m.format);
        if (problem) {
          this.log.warn({ bits_per_pixel: m.format.bitsPerPixel, true_colour: m.format.trueColour, reason: problem }, 'vnc client asked for an unsupported pixel format; closing');
          this.abort();
          return;
        }
        this.encoder = new PixelEncoder(m.format);
        return;
      }
      case 'set-encodings':
        // Raw is always allowed (RFC 6143 7.7.1) and it is all this server sends.
        this.log.debug({ encodings: m.encodings }, 'vnc client encodings');
        return;
      case 'update-request':
        this.onUpdateRequest(m.incremental, m.rect);
        return;
      case 'key':
        this.ctx.input.key(this.id, m.down, m.keysym);
        return;
      case 'pointer': {
        const previous = this.buttons;
        this.buttons = m.mask;
        this.ctx.input.pointer(this.id, m.x, m.y, m.mask, previous);
        return;
      }
      case 'cut-text':
        return;
    }
  }

  private onUpdateRequest(incremental: boolean, requested: Rect): void {
    const area = intersect(requested, this.ctx.framebuffer.bounds);
    if (isEmpty(area)) {
      // Nothing on screen was asked for; answer a full request at once rather than never.
      if (!incremental) this.sendUpdate([]);
      return;
    }
    if (!incremental) this.dirty.add(area);
    this.wanted = this.wanted ? bounds(this.wanted, area) : area;
    this.flush();
  }

  private flush(): void {
    if (this.phase !== 'normal' || !this.wanted) return;
    // Past the limit, wait for 'drain' and send what is dirty then: changes coalesce meanwhile.
    if (this.socket.writableLength > this.ctx.maxBufferedBytes) return;
    const rects = this.dirty.take(this.wanted);
    if (rects.length === 0) return;
    this.wanted = undefined;
    this.sendUpdate(rects);
  }

  private sendUpdate(rects: readonly Rect[]): void {
    const head = Buffer.alloc(4);
    head.writeUInt8(0, 0);
    head.writeUInt16BE(rects.length, 2);
    const parts: Buffer[] = [head];
    for (const r of rects) {
      const rh = Buffer.alloc(12);
      rh.writeUInt16BE(r.x, 0);
      rh.writeUInt16BE(r.y, 2);
      rh.writeUInt16BE(r.width, 4);
      rh.writeUInt16BE(r.height, 6);
      rh.writeInt32BE(ENCODING_RAW, 8);
      parts.push(rh, this.encoder.encode(this.ctx.framebuffer, r));
    }
    // Corked rather than concatenated: a full-screen update is megabytes, not worth copying twice.
    this.socket.cork();
    for (const part of parts) this.write(part);
    this.socket.uncork();
    this.updatesSent++;
  }

  private write(...parts: Buffer[]): void {
    if (this.socket.destroyed) return;
    this.socket.write(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
  }
}

/** RFC 6143 7.1.1: 3.3, 3.7 and 3.8 as asked; a later 3.x gets 3.8; 3.4 to 3.6 are treated as 3.3. */
export function parseVersion(text: string): RfbVersion | undefined {
  const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(text);
  if (!m || Number(m[1]) !== 3) return undefined;
  const minor = Number(m[2]);
  if (minor >= 8) return '3.8';
  if (minor === 7) return '3.7';
  return minor >= 3 ? '3.3' : undefined;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value, 0);
  return b;
}
