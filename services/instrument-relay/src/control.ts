/**
 * One controller at a time per instrument. Sessions able to control (operators who opened a
 * control session) ask for it; the holder may release it or grant it to someone asking; an
 * operator may take it back at any time (someone at the microscope must always be able to).
 */
import { EventEmitter } from 'node:events';

export interface ControlState {
  holder: string | undefined;
  requests: string[];
}

export type ControlEvent = { instrument: string; from: string | undefined; to: string | undefined; reason: 'first' | 'request' | 'release' | 'grant' | 'take' | 'gone' };

export class ControlArbiter extends EventEmitter<{ change: [ControlEvent] }> {
  private readonly states = new Map<string, ControlState>();

  state(instrument: string): ControlState {
    let s = this.states.get(instrument);
    if (!s) {
      s = { holder: undefined, requests: [] };
      this.states.set(instrument, s);
    }
    return s;
  }

  holds(instrument: string, session: string): boolean {
    return this.state(instrument).holder === session;
  }

  /** A control-capable session connected: it gets control if nobody holds it. */
  join(instrument: string, session: string): void {
    const s = this.state(instrument);
    if (s.holder === undefined) this.move(instrument, session, 'first');
  }

  request(instrument: string, session: string): void {
    const s = this.state(instrument);
    if (s.holder === session) return;
    if (s.holder === undefined) {
      this.move(instrument, session, 'request');
      return;
    }
    if (!s.requests.includes(session)) s.requests.push(session);
    this.emit('change', { instrument, from: s.holder, to: s.holder, reason: 'request' });
  }

  release(instrument: string, session: string): boolean {
    const s = this.state(instrument);
    if (s.holder !== session) return false;
    this.move(instrument, s.requests.shift(), 'release');
    return true;
  }

  grant(instrument: string, from: string, to: string): boolean {
    const s = this.state(instrument);
    if (s.holder !== from || !s.requests.includes(to)) return false;
    s.requests = s.requests.filter((r) => r !== to);
    this.move(instrument, to, 'grant');
    return true;
  }

  take(instrument: string, session: string): void {
    const s = this.state(instrument);
    if (s.holder === session) return;
    s.requests = s.requests.filter((r) => r !== session);
    this.move(instrument, session, 'take');
  }

  /** The session has no control-capable connection left. */
  leave(instrument: string, session: string): void {
    const s = this.state(instrument);
    s.requests = s.requests.filter((r) => r !== session);
    if (s.holder === session) this.move(instrument, s.requests.shift(), 'gone');
  }

  private move(instrument: string, to: string | undefined, reason: ControlEvent['reason']): void {
    const s = this.state(instrument);
    const from = s.holder;
    s.holder = to;
    this.emit('change', { instrument, from, to, reason });
  }
}
