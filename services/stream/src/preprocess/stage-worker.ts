/**
 * The worker-thread side of pool.ts: one task at a time, each a StageInput; replies with the
 * stage's metrics or its error as {code, message}. The stage table is imported on the first
 * task rather than at the top, so a missing or broken table fails tasks with the reason instead
 * of killing the worker before it can say why.
 */
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage } from '@cloudlet/core';
import type { WorkerReply } from './pool';
import type { StageError, StageFn, StageInput } from './stage-types';

const { stagesModule } = workerData as { stagesModule: string };
let table: Promise<Record<string, StageFn>> | undefined;

async function loadStages(): Promise<Record<string, StageFn>> {
  let mod: { STAGES?: unknown; default?: { STAGES?: unknown } };
  try {
    mod = (await import(pathToFileURL(stagesModule).href)) as typeof mod;
  } catch (err) {
    throw new Error(`cannot load the stages from ${stagesModule}: ${errorMessage(err)}`, { cause: err });
  }
  // A CommonJS module imported from here may show its exports only under `default`.
  const stages = mod.STAGES ?? mod.default?.STAGES;
  if (typeof stages !== 'object' || stages === null) throw new Error(`${stagesModule} exports no STAGES table`);
  return stages as Record<string, StageFn>;
}

/** Only `bad_movie` keeps its code: the pipeline treats every other failure alike (retry). */
function asStageError(err: unknown): StageError {
  const code = (err as { code?: unknown } | null)?.code;
  return { code: code === 'bad_movie' ? 'bad_movie' : 'error', message: errorMessage(err) };
}

async function runTask(input: StageInput): Promise<WorkerReply> {
  try {
    table ??= loadStages();
    const stages = await table.catch((err: unknown) => {
      table = undefined; // the file may appear later (a deploy in progress): try again on the next task
      throw err;
    });
    const fn = stages[input.stage];
    if (typeof fn !== 'function') return { ok: false, error: { code: 'error', message: `no stage "${input.stage}" in ${stagesModule}` } };
    return { ok: true, metrics: await fn(input) };
  } catch (err) {
    return { ok: false, error: asStageError(err) };
  }
}

parentPort?.on('message', (input: StageInput) => {
  void runTask(input).then((reply) => parentPort?.postMessage(reply));
});
