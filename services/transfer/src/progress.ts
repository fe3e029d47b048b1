/** Progress of a job run as the UI and the CLI see it: bytes, files, rate and ETA. */
import type { Queue } from './queue';
import type { TransferEvent } from './transfer';

/** Bytes, files, rate and ETA for one job run, published at most every 250 ms. */
export class Progress {
  private readonly started = Date.now();
  private readonly inFlight = new Map<unknown, number>();
  private lastEmit = 0;
  private baseBytes: number;
  private sentThisRun = 0;

  constructor(
    private readonly job: string,
    private counts: ReturnType<Queue['counts']>,
    private readonly publish: (e: TransferEvent) => void,
  ) {
    this.baseBytes = counts.bytes;
  }

  /** Bytes so far of one rsync run (`key`); 0 when it failed, so its bytes no longer count. */
  inflight(key: unknown, bytes: number): void {
    this.sentThisRun += bytes - (this.inFlight.get(key) ?? 0);
    if (bytes === 0) this.inFlight.delete(key);
    else this.inFlight.set(key, bytes);
    this.emit(this.counts, false);
  }

  emit(counts: ReturnType<Queue['counts']>, force: boolean): void {
    this.counts = counts;
    const now = Date.now();
    if (!force && now - this.lastEmit < 250) return;
    this.lastEmit = now;
    const elapsed = Math.max(now - this.started, 1) / 1000;
    const rate = this.sentThisRun / elapsed;
    const bytes = Math.min(this.baseBytes + this.sentThisRun, counts.totalBytes);
    const left = counts.totalBytes - bytes;
    this.publish({
      type: 'progress',
      job: this.job,
      bytes,
      total_bytes: counts.totalBytes,
      files_verified: counts.verified,
      files_total: counts.queued + counts.sending + counts.sent + counts.verified + counts.failed,
      rate_bps: Math.round(rate),
      eta_s: rate > 0 ? Math.round(left / rate) : null,
    });
  }
}
