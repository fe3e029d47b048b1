/**
 * A client for server-sent events (the stream service's /api/events): a parser that resumes on
 * partial input, and a connection that reconnects after a drop and says when it is (re)connected
 * so the caller can catch up on what it missed (the stream sends no event ids to resume from).
 */
import { errorMessage, type Logger } from '@cloudlet/core';

export interface SseEvent {
  event: string;
  data: string;
  id?: string | undefined;
}

/** Feeds on text chunks of any size (a byte at a time included) and returns complete events. */
export class SseParser {
  private buffered = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  /** A chunk ended in \r: a \n starting the next one belongs to the same line end. */
  private afterCr = false;

  feed(chunk: string): SseEvent[] {
    let text = chunk;
    if (this.afterCr && text.startsWith('\n')) text = text.slice(1);
    this.afterCr = text.endsWith('\r');
    this.buffered += text;
    const out: SseEvent[] = [];
    const lines = this.buffered.split(/\r\n|\r|\n/);
    this.buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
        this.data = [];
        this.event = '';
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) this.id = value;
    }
    return out;
  }
}

export interface SseClientOptions {
  url: string;
  reconnectMs: number;
  log: Logger;
  /** Each (re)connection, once the server answered: the moment to catch up. */
  onOpen: () => Promise<void> | void;
  onEvent: (event: SseEvent) => void;
  /** Reconnect when nothing (not even a heartbeat) arrives for this long; the stream beats every 15 s. */
  idleMs?: number;
}

/** Keeps one event stream open until stopped, reconnecting after every drop. */
export class SseClient {
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  /** Connections made so far (tests and logs). */
  connections = 0;

  private readonly idleMs: number;

  constructor(private readonly opts: SseClientOptions) {
    this.idleMs = opts.idleMs ?? 45_000;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { signal } = this.abort;
    while (!signal.aborted) {
      // A link that dies without a FIN sends nothing more: the server's heartbeats stopping is the sign.
      const connection = new AbortController();
      const abortAll = (): void => connection.abort();
      signal.addEventListener('abort', abortAll, { once: true });
      let idle: NodeJS.Timeout | undefined;
      const alive = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => connection.abort(new Error(`nothing heard for ${this.idleMs} ms`)), this.idleMs);
      };
      try {
        alive();
        const res = await fetch(this.opts.url, { headers: { accept: 'text/event-stream' }, signal: connection.signal });
        if (!res.ok || !res.body) throw new Error(`${this.opts.url} answered ${res.status}`);
        this.connections += 1;
        this.opts.log.info({ url: this.opts.url, connections: this.connections }, 'event stream connected');
        await this.opts.onOpen();
        const parser = new SseParser();
        const decoder = new TextDecoder();
        for await (const chunk of res.body) {
          alive();
          for (const event of parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))) this.opts.onEvent(event);
        }
        this.opts.log.warn({ url: this.opts.url }, 'event stream ended; reconnecting');
      } catch (err) {
        if (signal.aborted) break;
        this.opts.log.warn({ url: this.opts.url, reason: errorMessage(connection.signal.aborted ? connection.signal.reason : err) }, 'event stream failed; reconnecting');
      } finally {
        clearTimeout(idle);
        signal.removeEventListener('abort', abortAll);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.opts.reconnectMs);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }
}
