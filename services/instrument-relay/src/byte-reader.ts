/**
 * Sequential reads over a chunked byte stream (TCP data or WebSocket messages) for the
 * handshake phases, where each step waits for an exact number of bytes. After the handshake
 * `drain()` hands back whatever arrived beyond it, so no byte is lost at the switch to pumping.
 */
import { AppError } from '@cloudlet/core';

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;

  constructor(private readonly limit = 64 * 1024) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered > this.limit && !this.waiter) {
      this.fail(new AppError('peer sent more than the handshake allows', { code: 'rfb_protocol', status: 400 }));
      return;
    }
    this.satisfy();
  }

  /** The stream ended or broke: pending and future reads fail with `err`. */
  fail(err: Error): void {
    this.ended ??= err;
    if (this.waiter) {
      const { reject } = this.waiter;
      this.waiter = undefined;
      reject(err);
    }
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error('concurrent reads'));
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  async readU8(): Promise<number> {
    return (await this.read(1)).readUInt8(0);
  }

  async readU32(): Promise<number> {
    return (await this.read(4)).readUInt32BE(0);
  }

  /** Everything received but not yet read. */
  drain(): Buffer {
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private satisfy(): void {
    if (this.waiter && this.buffered >= this.waiter.n) {
      const { n, resolve } = this.waiter;
      this.waiter = undefined;
      resolve(this.take(n));
    }
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return Buffer.from(out);
  }
}
