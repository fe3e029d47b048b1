/**
 * The streaming parser of RFB client-to-server messages (RFC 6143 section 7.5) that stands
 * between a browser and the instrument. It resumes on partial input, forwards whole messages
 * only, drops input (keys, pointer, clipboard) from anyone not holding control, always drops
 * xvp (type 250: shutdown or reboot of the instrument PC), caps every length, and refuses any
 * message type it does not know, because an unparsed byte would desynchronize the stream.
 */

export const MSG = {
  setPixelFormat: 0,
  setEncodings: 2,
  framebufferUpdateRequest: 3,
  keyEvent: 4,
  pointerEvent: 5,
  clientCutText: 6,
  enableContinuousUpdates: 150,
  clientFence: 248,
  xvp: 250,
  setDesktopSize: 251,
  qemu: 255,
} as const;

export const MAX_SCREENS = 16;
const EMPTY = Buffer.alloc(0);
export const MAX_FENCE_PAYLOAD = 64;

export const MAX_ENCODINGS = 64;
export const MAX_CUT_TEXT = 256 * 1024;

export type Verdict = 'forward' | 'drop';

export interface ClientMessage {
  type: number;
  bytes: Buffer;
}

export interface FilterHooks {
  /** Whether this connection may send input right now (holds control). */
  mayControl(): boolean;
  /** Called for each key event forwarded, so held keys can be released at hand-over. */
  onKey?(down: boolean, keysym: number): void;
  onPointer?(x: number, y: number, mask: number): void;
}

export class ProtocolViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}

/** Bytes a message of `type` needs, given what has arrived; undefined until it can tell. */
function messageLength(type: number, buf: Buffer): number | undefined {
  switch (type) {
    case MSG.setPixelFormat:
      return 20;
    case MSG.setEncodings: {
      if (buf.length < 4) return undefined;
      const n = buf.readUInt16BE(2);
      if (n > MAX_ENCODINGS) throw new ProtocolViolation(`SetEncodings with ${n} encodings (limit ${MAX_ENCODINGS})`);
      return 4 + 4 * n;
    }
    case MSG.framebufferUpdateRequest:
      return 10;
    case MSG.keyEvent:
      return 8;
    case MSG.pointerEvent:
      return 6;
    case MSG.clientCutText: {
      if (buf.length < 8) return undefined;
      const n = buf.readUInt32BE(4);
      // The extended-clipboard form sets the top bit; it is just as capped.
      const length = n & 0x80000000 ? 0x100000000 - n : n;
      if (length > MAX_CUT_TEXT) throw new ProtocolViolation(`ClientCutText of ${length} bytes (limit ${MAX_CUT_TEXT})`);
      return 8 + length;
    }
    case MSG.xvp:
      return 4;
    // Extensions noVNC uses once a server (TigerVNC, QEMU) advertises them.
    case MSG.enableContinuousUpdates:
      return 10;
    case MSG.clientFence: {
      if (buf.length < 9) return undefined;
      const n = buf.readUInt8(8);
      if (n > MAX_FENCE_PAYLOAD) throw new ProtocolViolation(`ClientFence payload of ${n} bytes (limit ${MAX_FENCE_PAYLOAD})`);
      return 9 + n;
    }
    case MSG.setDesktopSize: {
      if (buf.length < 7) return undefined;
      const screens = buf.readUInt8(6);
      if (screens > MAX_SCREENS) throw new ProtocolViolation(`SetDesktopSize with ${screens} screens (limit ${MAX_SCREENS})`);
      return 8 + 16 * screens;
    }
    case MSG.qemu: {
      if (buf.length < 2) return undefined;
      if (buf.readUInt8(1) !== 0) throw new ProtocolViolation(`QEMU client message subtype ${buf.readUInt8(1)}`);
      return 12; // extended key event
    }
    default:
      throw new ProtocolViolation(`unknown client message type ${type}`);
  }
}

export class ClientMessageFilter {
  private pending: Buffer = Buffer.alloc(0);
  /** Counts for the audit log. */
  readonly dropped = { input: 0, xvp: 0 };

  constructor(private readonly hooks: FilterHooks) {}

  /**
   * Feeds bytes from the browser; returns the bytes to send upstream (whole messages only).
   * Throws ProtocolViolation on anything the relay must not pass on.
   */
  push(chunk: Buffer): Buffer {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    let offset = 0;
    while (offset < this.pending.length) {
      const rest = this.pending.subarray(offset);
      const type = rest[0] as number;
      const length = messageLength(type, rest);
      if (length === undefined || rest.length < length) break;
      const message = rest.subarray(0, length);
      if (this.judge(type, message) === 'forward') out.push(message);
      offset += length;
    }
    const whole = offset === this.pending.length;
    this.pending = whole ? EMPTY : Buffer.from(this.pending.subarray(offset));
    // The common case, one or more whole messages all forwarded: no copy.
    if (out.length === 1) return out[0] as Buffer;
    return out.length === 0 ? EMPTY : Buffer.concat(out);
  }

  private judge(type: number, message: Buffer): Verdict {
    switch (type) {
      case MSG.xvp:
        this.dropped.xvp++;
        return 'drop';
      case MSG.keyEvent:
      case MSG.pointerEvent:
      case MSG.clientCutText:
      case MSG.qemu:
      case MSG.setDesktopSize: // resizing the instrument PC's screen is control too
        if (!this.hooks.mayControl()) {
          this.dropped.input++;
          return 'drop';
        }
        if (type === MSG.keyEvent) this.hooks.onKey?.(message.readUInt8(1) !== 0, message.readUInt32BE(4));
        if (type === MSG.qemu) this.hooks.onKey?.(message.readUInt16BE(2) !== 0, message.readUInt32BE(4));
        if (type === MSG.pointerEvent) this.hooks.onPointer?.(message.readUInt16BE(2), message.readUInt16BE(4), message.readUInt8(1));
        return 'forward';
      default:
        return 'forward';
    }
  }
}

export { encodeKeyEvent as keyEvent, encodePointerEvent as pointerEvent } from '@cloudlet/core';
