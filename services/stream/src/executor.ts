/**
 * How a pipeline step runs: an argument vector (never a shell string), a working directory, an
 * environment, a time limit. Executors (local worker pool, Slurm) take a step and report how it
 * ended; the pipeline decides retries and records everything in the ledger.
 */

export interface StepJob {
  /** Identifies this run of this step for this movie, stable across restarts of the service. */
  key: string;
  argv: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  timeoutS: number;
  /** Where stdout and stderr go (one file, appended). */
  logFile: string;
}

export type StepOutcome =
  | { status: 'ok'; seconds: number }
  | { status: 'failed'; reason: string; exitCode: number | null; seconds: number }
  | { status: 'timeout'; seconds: number }
  /** The executor itself could not run it (Slurm down, no such program): worth retrying later. */
  | { status: 'unavailable'; reason: string };

export interface Executor {
  readonly name: string;
  /** Runs the step to its end. Resolves with the outcome; rejects only on a programming error. */
  run(job: StepJob, signal?: AbortSignal): Promise<StepOutcome>;
  /**
   * Steps started before a restart that are still known to the executor (Slurm: jobs whose name
   * carries a key), so the pipeline can wait for them instead of starting them twice.
   */
  adopt?(keys: readonly string[]): Promise<Map<string, Promise<StepOutcome>>>;
  close(): Promise<void>;
}
