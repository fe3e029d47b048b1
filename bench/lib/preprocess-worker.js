// A worker thread of the preprocess bench: generates synthetic movies (untimed) and runs the
// built-in stages on one movie at a time, reporting each stage's wall time.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { parentPort } = require('node:worker_threads');

const DIST = path.resolve(__dirname, '..', '..', 'services', 'stream', 'dist', 'preprocess');
const { STAGES } = require(path.join(DIST, 'stages.js'));
const { mergeMetrics } = require(path.join(DIST, 'metrics.js'));
const { syntheticStream } = require(path.join(DIST, 'synthetic.js'));
const { writeMrc } = require(path.join(DIST, 'mrc.js'));

async function generate({ file, spec, truthFile }) {
  const s = await syntheticStream({
    width: spec.width, height: spec.genHeight, frames: spec.frames, seed: spec.seed, pixelSize_A: spec.pixelSize_A,
    dosePerFrame: spec.dosePerFrame, bFactor_A2: spec.bFactor_A2, ctf: spec.ctf, drift: spec.drift, particles: spec.particles,
  });
  // K3 rows (4092) are not an FFT size: generate 4096 rows and keep the first 4092.
  async function* cropped() {
    for await (const f of s.frames()) yield f.subarray(0, spec.width * spec.height);
  }
  const tmp = `${file}.tmp`;
  await writeMrc(tmp, { width: spec.width, height: spec.height, frames: cropped(), mode: 0, pixelSizeA: spec.pixelSize_A });
  fs.renameSync(tmp, file);
  fs.writeFileSync(truthFile, JSON.stringify({ spec, drift: s.truth.drift, particles: s.truth.particles, ctf: s.truth.ctf }));
  return {};
}

async function run({ movie, out, options, stages }) {
  let metrics = {};
  const times = {};
  for (const stage of stages) {
    const t = performance.now();
    const m = await STAGES[stage]({ stage, movie, out, options, previous: metrics });
    times[stage] = (performance.now() - t) / 1000;
    metrics = mergeMetrics(metrics, m);
  }
  return { metrics, times };
}

parentPort.on('message', (msg) => {
  const job = msg.kind === 'generate' ? generate(msg) : run(msg);
  job.then(
    (result) => parentPort.postMessage({ id: msg.id, result }),
    (err) => parentPort.postMessage({ id: msg.id, error: { message: err.message, code: err.code, stack: err.stack } }),
  );
});
