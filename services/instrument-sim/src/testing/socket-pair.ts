/**
 * Two connected in-memory stream ends: a loopback connection without the kernel, so a test
 * decides how bytes are chunked. With `split`, every byte written toward that end arrives as
 * its own chunk, the way noVNC's tests feed decoders one byte at a time.
 */
import { Duplex } from 'node:stream';

export class MemorySocket extends Duplex {
  remoteAddress: string | undefined = 'memory';
  peer: MemorySocket | undefined;

  constructor(readonly splitIncoming: boolean) {
    // Like a TCP socket: when the other side ends, this side ends too and then closes.
    super({ allowHalfOpen: false });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (!peer || peer.destroyed) {
      done(Object.assign(new Error('write to a closed memory socket'), { code: 'EPIPE' }));
      return;
    }
    if (peer.splitIncoming) for (let i = 0; i < chunk.length; i++) peer.push(chunk.subarray(i, i + 1));
    else peer.push(chunk);
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    if (peer && !peer.destroyed) peer.destroy();
    done(err);
  }

  setNoDelay(): this {
    return this;
  }
}

/** [client, server]; `split` names the ends that receive one byte per chunk. */
export function socketPair(split: { toServer?: boolean; toClient?: boolean } = {}): [MemorySocket, MemorySocket] {
  const client = new MemorySocket(split.toClient ?? false);
  const server = new MemorySocket(split.toServer ?? false);
  client.peer = server;
  server.peer = client;
  return [client, server];
}
