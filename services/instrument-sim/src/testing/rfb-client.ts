/**
 * A small RFB (RFC 6143) client for tests: the simulator's own, and the relay's against the
 * simulator, x11vnc or the relay itself. It speaks 3.3, 3.7 and 3.8 with VNC authentication
 * (or None when that is all a server offers), reads Raw updates in any true-colour format into
 * an RGB mirror of the screen, and sends pointer, key and raw bytes.
 *
 * Reads are incremental: bytes are queued as they arrive, in chunks of any size, and each
 * read waits for exactly the bytes it needs. Every wait has a timeout, so a test that expects
 * a message the server never sends fails with a message, not a hang.
 */
import net from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { encodeCutText, encodeKeyEvent, encodePointerEvent, encodeSetEncodings, encodeUpdateRequest, vncAuthResponse } from '@cloudlet/core';
import { type PixelFormat, PIXEL_FORMAT_BYTES, readPixelFormat, writePixelFormat } from '../pixel-format';

export type { PixelFormat } from '../pixel-format';
export { MemorySocket, socketPair } from './socket-pair';

export interface ServerInit {
  width: number;
  height: number;
  pixelFormat: PixelFormat;
  name: string;
}

export interface UpdateRect {
  x: number;
  y: number;
  width: number;
  height: number;
  encoding: number;
  /** The rectangle's pixels as sent (Raw), in the client's pixel format at the time. */
  pixels: Buffer;
}

export interface ConnectOptions {
  /** ClientInit's shared flag; true unless said otherwise. */
  shared?: boolean;
  /** The version this client claims; 3.8 by default. */
  version?: '3.3' | '3.7' | '3.8';
  /** Per read; 10 s by default. */
  timeoutMs?: number;
}

/** The server refused the connection; `reason` is the server's text when it sent one (3.8). */
export class RfbAuthError extends Error {
  constructor(
    message: string,
    readonly reason: string | undefined,
  ) {
    super(message);
    this.name = 'RfbAuthError';
  }
}

const ENCODING_RAW = 0;
const ENCODING_DESKTOP_SIZE = -223;
const SECURITY_NONE = 1;
const SECURITY_VNC = 2;

/** Queues bytes from a stream and hands them out in exactly the sizes asked for. */
export class ByteReader {
  private chunks: Buffer[] = [];
  private queued = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private ended: string | undefined;

  constructor(
    stream: Readable,
    private readonly timeoutMs = 10_000,
  ) {
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    stream.on('end', () => this.end('the connection ended'));
    stream.on('close', () => this.end('the connection closed'));
    stream.on('error', (err) => this.end(`the connection failed: ${err.message}`));
  }

  get available(): number {
    return this.queued;
  }

  get closed(): boolean {
    return this.ended !== undefined;
  }

  read(n: number, timeoutMs = this.timeoutMs): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error('one read at a time'));
    if (this.queued >= n) return Promise.resolve(this.take(n));
    if (this.ended) return Promise.reject(new Error(`${this.ended} with ${this.queued} of ${n} bytes read`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${n} bytes (${this.queued} arrived)`));
      }, timeoutMs);
      this.waiter = { n, resolve, reject, timer };
    });
  }

  private push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.queued += chunk.length;
    const w = this.waiter;
    if (w && this.queued >= w.n) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(this.take(w.n));
    }
  }

  private end(why: string): void {
    this.ended ??= why;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(new Error(`${why} with ${this.queued} of ${w.n} bytes read`));
    }
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.queued = rest.length;
    return out;
  }
}

export class RfbClient {
  serverInit: ServerInit | undefined;
  pixelFormat: PixelFormat | undefined;
  /** The screen as this client has seen it, 4 bytes a pixel (R, G, B, 0). */
  framebuffer: Buffer | undefined;
  private readonly reader: ByteReader;
  private readonly closedPromise: Promise<void>;

  constructor(
    readonly socket: Duplex,
    /** The protocol version both sides agreed on. */
    readonly version: string,
    reader: ByteReader,
  ) {
    this.reader = reader;
    this.closedPromise = new Promise((resolve) => {
      if (socket.closed) resolve();
      else socket.once('close', () => resolve());
    });
  }

  async readServerInit(): Promise<ServerInit> {
    const head = await this.reader.read(4 + PIXEL_FORMAT_BYTES + 4);
    const pixelFormat = readPixelFormat(head, 4);
    const name = (await this.reader.read(head.readUInt32BE(20))).toString('utf8');
    this.serverInit = { width: head.readUInt16BE(0), height: head.readUInt16BE(2), pixelFormat, name };
    this.pixelFormat = pixelFormat;
    this.framebuffer = Buffer.alloc(this.serverInit.width * this.serverInit.height * 4);
    return this.serverInit;
  }

  setPixelFormat(format: PixelFormat): void {
    this.write(Buffer.concat([Buffer.from([0, 0, 0, 0]), writePixelFormat(format)]));
    this.pixelFormat = format;
  }

  setEncodings(encodings: number[]): void {
    this.write(encodeSetEncodings(encodings));
  }

  requestUpdate(incremental: boolean, x = 0, y = 0, width = this.serverInit?.width ?? 0, height = this.serverInit?.height ?? 0): void {
    this.write(encodeUpdateRequest(incremental, x, y, width, height));
  }

  /** The next FramebufferUpdate's rectangles (Bell, ServerCutText and colour maps are skipped), applied to `framebuffer`. */
  async readUpdate(timeoutMs?: number): Promise<UpdateRect[]> {
    for (;;) {
      const type = (await this.reader.read(1, timeoutMs)).readUInt8(0);
      if (type === 0) return this.readRects(timeoutMs);
      if (type === 1) {
        const h = await this.reader.read(5, timeoutMs);
        await this.reader.read(6 * h.readUInt16BE(3), timeoutMs);
      } else if (type === 3) {
        const h = await this.reader.read(7, timeoutMs);
        await this.reader.read(h.readUInt32BE(3), timeoutMs);
      } else if (type !== 2) {
        throw new Error(`unknown server message type ${type}`);
      }
    }
  }

  /** The mirrored pixel at (x, y) as 0xRRGGBB. */
  pixel(x: number, y: number): number {
    if (!this.framebuffer || !this.serverInit) throw new Error('no ServerInit read yet');
    const i = (y * this.serverInit.width + x) * 4;
    return ((this.framebuffer[i] ?? 0) << 16) | ((this.framebuffer[i + 1] ?? 0) << 8) | (this.framebuffer[i + 2] ?? 0);
  }

  pointer(x: number, y: number, mask: number): void {
    this.write(encodePointerEvent(x, y, mask));
  }

  /** Button 1 down then up at (x, y). */
  click(x: number, y: number): void {
    this.pointer(x, y, 1);
    this.pointer(x, y, 0);
  }

  key(down: boolean, keysym: number): void {
    this.write(encodeKeyEvent(down, keysym));
  }

  /** Key down then up. */
  press(keysym: number): void {
    this.key(true, keysym);
    this.key(false, keysym);
  }

  cutText(text: string): void {
    this.write(encodeCutText(text));
  }

  /** Sends bytes as they are, for protocol tests. */
  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves when the server closes the connection; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the connection stayed open for ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.closedPromise, timeout]).finally(() => clearTimeout(timer));
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closedPromise;
  }

  private async readRects(timeoutMs?: number): Promise<UpdateRect[]> {
    const count = (await this.reader.read(3, timeoutMs)).readUInt16BE(1);
    const rects: UpdateRect[] = [];
    for (let i = 0; i < count; i++) {
      const h = await this.reader.read(12, timeoutMs);
      const r = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), width: h.readUInt16BE(4), height: h.readUInt16BE(6), encoding: h.readInt32BE(8) };
      if (r.encoding === ENCODING_RAW) {
        const bpp = (this.pixelFormat?.bitsPerPixel ?? 32) / 8;
        const pixels = await this.reader.read(r.width * r.height * bpp, timeoutMs);
        rects.push({ ...r, pixels });
        this.apply(r, pixels);
      } else if (r.encoding === ENCODING_DESKTOP_SIZE) {
        if (this.serverInit) this.serverInit = { ...this.serverInit, width: r.width, height: r.height };
        this.framebuffer = Buffer.alloc(r.width * r.height * 4);
        rects.push({ ...r, pixels: Buffer.alloc(0) });
      } else {
        throw new Error(`this test client reads Raw only, not encoding ${r.encoding}`);
      }
    }
    return rects;
  }

  private apply(r: Omit<UpdateRect, 'pixels'>, pixels: Buffer): void {
    const f = this.pixelFormat;
    const fb = this.framebuffer;
    const width = this.serverInit?.width ?? 0;
    if (!f || !fb) return;
    const bpp = f.bitsPerPixel / 8;
    const red = channelTable(f.redMax);
    const green = channelTable(f.greenMax);
    const blue = channelTable(f.blueMax);
    let o = 0;
    for (let y = r.y; y < r.y + r.height; y++) {
      let i = (y * width + r.x) * 4;
      for (let x = 0; x < r.width; x++, o += bpp, i += 4) {
        let v: number;
        if (bpp === 4) v = f.bigEndian ? pixels.readUInt32BE(o) : pixels.readUInt32LE(o);
        else if (bpp === 2) v = f.bigEndian ? pixels.readUInt16BE(o) : pixels.readUInt16LE(o);
        else v = pixels.readUInt8(o);
        fb[i] = red[(v >>> f.redShift) & f.redMax] as number;
        fb[i + 1] = green[(v >>> f.greenShift) & f.greenMax] as number;
        fb[i + 2] = blue[(v >>> f.blueShift) & f.blueMax] as number;
      }
    }
  }
}

/** Channel value (0..max) to 8 bits. */
function channelTable(max: number): Uint8Array {
  const table = new Uint8Array(max + 1);
  for (let v = 0; v <= max; v++) table[v] = Math.round((v * 255) / max);
  return table;
}

/**
 * Connects and completes the handshake up to and including ClientInit; the caller reads
 * ServerInit next. Throws RfbAuthError when the server refuses.
 */
export async function connect(host: string, port: number, password: string, options: ConnectOptions = {}): Promise<RfbClient> {
  const socket = net.connect({ host, port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve();
    });
    socket.once('error', reject);
  });
  socket.on('error', () => undefined); // reported through the reader
  try {
    return await handshake(socket, password, options);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** Runs the handshake over an already open stream (a socket, or an in-memory pair in unit tests). */
export async function handshake(socket: Duplex, password: string, options: ConnectOptions = {}): Promise<RfbClient> {
  const reader = new ByteReader(socket, options.timeoutMs);
  const serverVersion = (await reader.read(12)).toString('latin1');
  if (!/^RFB 003\.\d{3}\n$/.test(serverVersion)) throw new Error(`not an RFB 3.x server: ${JSON.stringify(serverVersion)}`);
  const minor = Math.min(Number(serverVersion.slice(8, 11)), Number((options.version ?? '3.8').slice(2)));
  const version = minor >= 8 ? '3.8' : minor === 7 ? '3.7' : '3.3';
  socket.write(`RFB 003.00${version.slice(2)}\n`);

  let type: number;
  if (version === '3.3') {
    type = (await reader.read(4)).readUInt32BE(0);
    if (type === 0) throw new RfbAuthError('the server refused the connection', await readReason(reader));
  } else {
    const n = (await reader.read(1)).readUInt8(0);
    if (n === 0) throw new RfbAuthError('the server offered no security types', await readReason(reader));
    const offered = [...(await reader.read(n))];
    type = offered.includes(SECURITY_VNC) ? SECURITY_VNC : offered.includes(SECURITY_NONE) ? SECURITY_NONE : -1;
    if (type === -1) throw new Error(`the server offers security types ${offered.join(', ')}, none of which this client speaks`);
    socket.write(Buffer.from([type]));
  }
  if (type === SECURITY_VNC) socket.write(vncAuthResponse(await reader.read(16), password));
  else if (type !== SECURITY_NONE) throw new Error(`unsupported security type ${type}`);

  // RFB 3.3 and 3.7 send no SecurityResult after None.
  if (type === SECURITY_VNC || version === '3.8') {
    const result = (await reader.read(4)).readUInt32BE(0);
    if (result !== 0) {
      const reason = version === '3.8' ? await readReason(reader) : undefined;
      throw new RfbAuthError(`authentication failed${reason ? `: ${reason}` : ''}`, reason);
    }
  }
  socket.write(Buffer.from([options.shared === false ? 0 : 1]));
  return new RfbClient(socket, version, reader);
}

async function readReason(reader: ByteReader): Promise<string> {
  const length = (await reader.read(4)).readUInt32BE(0);
  return (await reader.read(length)).toString('utf8');
}
