/**
 * Client-to-server RFB messages after the handshake (RFC 6143 section 7.5), parsed from a byte
 * stream that may arrive in pieces of any size, one byte included. Progress lives in the
 * parser: an incomplete message waits in `pending` (at most one message, at most ~1 KiB), and
 * ClientCutText content is skipped as it streams past, never buffered.
 */
import { AppError } from '@cloudlet/core';
import { type PixelFormat, readPixelFormat } from './pixel-format';
import type { Rect } from './region';

export const MAX_ENCODINGS = 256;
export const MAX_CUT_TEXT_BYTES = 1024 * 1024;

export const MessageType = {
  SetPixelFormat: 0,
  SetEncodings: 2,
  FramebufferUpdateRequest: 3,
  KeyEvent: 4,
  PointerEvent: 5,
  ClientCutText: 6,
} as const;

export type ClientMessage =
  | { type: 'set-pixel-format'; format: PixelFormat }
  | { type: 'set-encodings'; encodings: number[] }
  | { type: 'update-request'; incremental: boolean; rect: Rect }
  | { type: 'key'; down: boolean; keysym: number }
  | { type: 'pointer'; mask: number; x: number; y: number }
  /** The text itself is skipped: the simulator has no clipboard, and it may be a password. */
  | { type: 'cut-text'; length: number };

export class RfbProtocolError extends AppError {
  constructor(message: string) {
    super(message, { code: 'rfb_protocol', status: 400, publicMessage: 'RFB protocol error' });
    this.name = 'RfbProtocolError';
  }
}

const EMPTY = Buffer.alloc(0);

export class ClientMessageParser {
  private pending: Buffer = EMPTY;
  private skipping = 0;
  private failure: RfbProtocolError | undefined;

  /**
   * Hands every complete message in `chunk` (with what was pending) to `onMessage`, in order.
   * Throws RfbProtocolError at the first malformed message, and again on any later call: the
   * stream cannot be resynchronised, so the caller closes the connection.
   */
  push(chunk: Buffer, onMessage: (message: ClientMessage) => void): void {
    if (this.failure) throw this.failure;
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let offset = 0;
    try {
      for (;;) {
        if (this.skipping > 0) {
          const n = Math.min(this.skipping, data.length - offset);
          this.skipping -= n;
          offset += n;
          if (this.skipping > 0) break;
        }
        if (offset >= data.length) break;
        const length = messageLength(data, offset);
        if (length === undefined || data.length - offset < length) break;
        const message = decode(data.subarray(offset, offset + length));
        offset += length;
        if (message.type === 'cut-text') this.skipping = message.length;
        onMessage(message);
      }
    } catch (err) {
      if (err instanceof RfbProtocolError) this.failure = err;
      throw err;
    } finally {
      // Copy the remainder so a large chunk is not kept alive by a few pending bytes.
      data = data.subarray(offset);
      this.pending = data.length > 0 ? Buffer.from(data) : EMPTY;
    }
  }

  /** Bytes held for an incomplete message (for tests and stats). */
  get pendingBytes(): number {
    return this.pending.length;
  }
}

/** The full length of the message starting at `offset`, or undefined until its header is in. */
function messageLength(data: Buffer, offset: number): number | undefined {
  const type = data.readUInt8(offset);
  const available = data.length - offset;
  switch (type) {
    case MessageType.SetPixelFormat:
      return 20;
    case MessageType.SetEncodings: {
      if (available < 4) return undefined;
      const n = data.readUInt16BE(offset + 2);
      if (n > MAX_ENCODINGS) throw new RfbProtocolError(`SetEncodings lists ${n} encodings (at most ${MAX_ENCODINGS})`);
      return 4 + 4 * n;
    }
    case MessageType.FramebufferUpdateRequest:
      return 10;
    case MessageType.KeyEvent:
      return 8;
    case MessageType.PointerEvent:
      return 6;
    case MessageType.ClientCutText: {
      if (available < 8) return undefined;
      const n = data.readUInt32BE(offset + 4);
      if (n > MAX_CUT_TEXT_BYTES) throw new RfbProtocolError(`ClientCutText of ${n} bytes (at most ${MAX_CUT_TEXT_BYTES})`);
      return 8;
    }
    default:
      throw new RfbProtocolError(`unknown client message type ${type}`);
  }
}

function decode(m: Buffer): ClientMessage {
  switch (m.readUInt8(0)) {
    case MessageType.SetPixelFormat:
      return { type: 'set-pixel-format', format: readPixelFormat(m, 4) };
    case MessageType.SetEncodings: {
      const encodings: number[] = [];
      for (let i = 4; i < m.length; i += 4) encodings.push(m.readInt32BE(i));
      return { type: 'set-encodings', encodings };
    }
    case MessageType.FramebufferUpdateRequest:
      return {
        type: 'update-request',
        incremental: m.readUInt8(1) !== 0,
        rect: { x: m.readUInt16BE(2), y: m.readUInt16BE(4), width: m.readUInt16BE(6), height: m.readUInt16BE(8) },
      };
    case MessageType.KeyEvent:
      return { type: 'key', down: m.readUInt8(1) !== 0, keysym: m.readUInt32BE(4) };
    case MessageType.PointerEvent:
      return { type: 'pointer', mask: m.readUInt8(1), x: m.readUInt16BE(2), y: m.readUInt16BE(4) };
    case MessageType.ClientCutText:
      return { type: 'cut-text', length: m.readUInt32BE(4) };
    default:
      throw new RfbProtocolError(`unknown client message type ${m.readUInt8(0)}`);
  }
}
