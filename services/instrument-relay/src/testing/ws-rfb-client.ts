/**
 * A browser-like RFB client over WebSocket for tests: it speaks to the relay exactly as noVNC
 * does (binary frames, RFB 3.8, VNC auth), and decodes Raw framebuffer updates so tests can
 * look at pixels.
 */
import { encodeKeyEvent, encodePointerEvent, encodeSetEncodings, encodeUpdateRequest, vncAuthResponse } from '@cloudlet/core';
import WebSocket from 'ws';
import { ByteReader } from '../byte-reader';

export interface ServerInit {
  width: number;
  height: number;
  name: string;
}

export class WsRfbClient {
  readonly reader = new ByteReader(64 * 1024 * 1024);
  closeCode: number | undefined;
  closeReason = '';
  readonly closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.reader.push(data));
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.reader.fail(new Error(`closed ${code} ${this.closeReason}`));
        resolve();
      });
    });
  }

  /** Opens the WebSocket; rejects with the HTTP status when the upgrade is refused. */
  static open(url: string, origin: string | undefined, protocols: string[] = ['binary']): Promise<WsRfbClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, origin === undefined ? {} : { origin });
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
      ws.once('open', () => resolve(new WsRfbClient(ws)));
    });
  }

  send(data: Buffer): void {
    this.ws.send(data, { binary: true });
  }

  /** The RFB 3.8 handshake with VNC auth. Resolves with ServerInit, or rejects with the server's reason. */
  async handshake(password: string): Promise<ServerInit> {
    const version = (await this.reader.read(12)).toString('latin1');
    if (version !== 'RFB 003.008\n') throw new Error(`unexpected version ${JSON.stringify(version)}`);
    this.send(Buffer.from('RFB 003.008\n'));
    const count = await this.reader.readU8();
    const types = [...(await this.reader.read(count))];
    if (!types.includes(2)) throw new Error(`no VNC auth offered: ${types.join(',')}`);
    this.send(Buffer.from([2]));
    const challenge = await this.reader.read(16);
    this.send(vncAuthResponse(challenge, password));
    const result = await this.reader.readU32();
    if (result !== 0) {
      const length = await this.reader.readU32();
      throw Object.assign(new Error((await this.reader.read(length)).toString('utf8')), { securityResult: result });
    }
    this.send(Buffer.from([0])); // ClientInit: not shared (the relay must share upstream anyway)
    const head = await this.reader.read(24);
    const name = (await this.reader.read(head.readUInt32BE(20))).toString('latin1');
    return { width: head.readUInt16BE(0), height: head.readUInt16BE(2), name };
  }

  setEncodings(codes: number[]): void {
    this.send(encodeSetEncodings(codes));
  }

  requestUpdate(incremental: boolean, width: number, height: number, x = 0, y = 0): void {
    this.send(encodeUpdateRequest(incremental, x, y, width, height));
  }

  pointer(x: number, y: number, mask: number): void {
    this.send(encodePointerEvent(x, y, mask));
  }

  key(down: boolean, keysym: number): void {
    this.send(encodeKeyEvent(down, keysym));
  }

  /**
   * Reads one FramebufferUpdate of Raw rectangles (after SetEncodings([0])), skipping other
   * server messages, and paints it into `fb` (32 bpp, the server's default format).
   */
  async readUpdate(fb: { width: number; data: Buffer }): Promise<{ x: number; y: number; w: number; h: number }[]> {
    for (;;) {
      const type = await this.reader.readU8();
      if (type === 2) continue; // Bell
      if (type === 3) {
        await this.reader.read(3);
        await this.reader.read(await this.reader.readU32());
        continue;
      }
      if (type === 1) throw new Error('SetColourMapEntries is not expected at 32 bpp');
      if (type !== 0) throw new Error(`unexpected server message ${type}`);
      await this.reader.read(1);
      const count = (await this.reader.read(2)).readUInt16BE(0);
      const rects: { x: number; y: number; w: number; h: number }[] = [];
      for (let i = 0; i < count; i++) {
        const h = await this.reader.read(12);
        const rect = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), w: h.readUInt16BE(4), h: h.readUInt16BE(6) };
        const encoding = h.readInt32BE(8);
        if (encoding !== 0) throw new Error(`unexpected encoding ${encoding}`);
        const pixels = await this.reader.read(rect.w * rect.h * 4);
        for (let row = 0; row < rect.h; row++) {
          pixels.copy(fb.data, ((rect.y + row) * fb.width + rect.x) * 4, row * rect.w * 4, (row + 1) * rect.w * 4);
        }
        rects.push(rect);
      }
      return rects;
    }
  }

  close(): void {
    this.ws.close();
  }
}
