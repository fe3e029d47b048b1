/**
 * The relay's side of the instrument's VNC server: connect, authenticate with the instrument
 * password (which never leaves this process), always ask for a shared session (TigerVNC-style
 * servers evict other viewers otherwise), and read ServerInit.
 */
import net from 'node:net';
import { AppError, vncAuthResponse } from '@cloudlet/core';
import { ByteReader } from './byte-reader';

export interface UpstreamTarget {
  host: string;
  port: number;
  /** undefined: the server must offer security type 1 (None). */
  password: string | undefined;
}

export interface Upstream {
  socket: net.Socket;
  serverInit: Buffer;
  /** Bytes the server sent after ServerInit, before pumping began. */
  leftover: Buffer;
  /** Where the instrument's bytes go from now on (sockets built with `onread` emit no 'data'). */
  onData(fn: (chunk: Buffer) => void): void;
  /** Gives a chunk from onData back for reuse; call only once it has been written out. */
  recycle(chunk: Buffer): void;
}

/** The instrument refused our credentials: retrying would only get the relay's address blacklisted. */
export class UpstreamAuthError extends AppError {
  constructor(reason: string) {
    super(`instrument VNC server refused the relay's password: ${reason}`, {
      code: 'upstream_auth_failed',
      status: 502,
      publicMessage: 'The relay could not sign in to the instrument. The facility has been alerted.',
    });
  }
}

const MAX_NAME = 4096;

/**
 * Reads land in 64 KiB buffers handed straight to the browser side (no copy) and recycled once
 * written, so a busy screen does not leave a gigabyte of buffers a second for the GC.
 */
const READ_BUFFER_BYTES = 64 * 1024;
const POOL_MAX = 64;

export async function connectUpstream(target: UpstreamTarget, timeoutMs = 10_000): Promise<Upstream> {
  const reader = new ByteReader();
  const pool: Buffer[] = [];
  let sink: (chunk: Buffer) => void = (chunk) => reader.push(chunk);
  const socket = net.connect({
    host: target.host,
    port: target.port,
    onread: {
      buffer: () => pool.pop() ?? Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (nread: number, buf: Uint8Array) => {
        sink(Buffer.from(buf.buffer, buf.byteOffset, nread));
        return true;
      },
    },
  });
  socket.setNoDelay(true);
  socket.once('error', (err) => reader.fail(err));
  socket.once('close', () => reader.fail(new AppError('instrument closed the connection during the handshake', { code: 'upstream_closed', status: 502, publicMessage: 'The instrument closed the connection.' })));
  const timer = setTimeout(() => reader.fail(new AppError('instrument VNC handshake timed out', { code: 'upstream_timeout', status: 504, publicMessage: 'The instrument did not answer in time.' })), timeoutMs);
  try {
    const serverInit = await handshake(socket, reader, target.password);
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
    let pending: Buffer[] = [];
    sink = (chunk) => pending.push(chunk);
    return {
      socket,
      serverInit,
      leftover: reader.drain(),
      recycle(chunk) {
        // Only whole read buffers come back, and only after the browser side wrote them out.
        if (chunk.buffer.byteLength === READ_BUFFER_BYTES && chunk.byteOffset === 0 && pool.length < POOL_MAX) {
          pool.push(Buffer.from(chunk.buffer, 0, READ_BUFFER_BYTES));
        }
      },
      onData(fn) {
        sink = fn;
        for (const chunk of pending) fn(chunk);
        pending = [];
      },
    };
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function readReason(reader: ByteReader): Promise<string> {
  const length = await reader.readU32();
  return (await reader.read(Math.min(length, MAX_NAME))).toString('latin1');
}

async function handshake(socket: net.Socket, reader: ByteReader, password: string | undefined): Promise<Buffer> {
  const version = (await reader.read(12)).toString('latin1');
  const match = /^RFB (\d{3})\.(\d{3})\n$/.exec(version);
  if (!match) throw new AppError(`instrument sent no RFB version (${JSON.stringify(version)})`, { code: 'upstream_protocol', status: 502, publicMessage: 'The instrument does not speak VNC.' });
  const minor = Number(match[1]) > 3 ? 8 : Math.min(Number(match[2]), 8);
  const chosen = minor >= 8 ? 8 : minor >= 7 ? 7 : 3;
  socket.write(`RFB 003.00${chosen}\n`);

  let type: number;
  if (chosen === 3) {
    type = await reader.readU32();
    if (type === 0) throw new UpstreamAuthError(await readReason(reader));
  } else {
    const count = await reader.readU8();
    if (count === 0) throw new UpstreamAuthError(await readReason(reader));
    const types = [...(await reader.read(count))];
    type = password !== undefined && types.includes(2) ? 2 : types.includes(1) && password === undefined ? 1 : -1;
    if (type < 0) throw new UpstreamAuthError(`no usable security type among [${types.join(', ')}]${password === undefined ? ' (no password is configured)' : ''}`);
    socket.write(Buffer.from([type]));
  }
  if (type === 2) {
    if (password === undefined) throw new UpstreamAuthError('the server wants a password and none is configured');
    const challenge = await reader.read(16);
    socket.write(vncAuthResponse(challenge, password));
  }
  if (type === 2 || chosen === 8) {
    const result = await reader.readU32();
    if (result !== 0) throw new UpstreamAuthError(chosen === 8 ? await readReason(reader) : 'authentication failed');
  }
  socket.write(Buffer.from([1])); // ClientInit: shared
  const head = await reader.read(24);
  const nameLength = head.readUInt32BE(20);
  if (nameLength > MAX_NAME) throw new AppError(`instrument desktop name of ${nameLength} bytes`, { code: 'upstream_protocol', status: 502 });
  return Buffer.concat([head, await reader.read(nameLength)]);
}
