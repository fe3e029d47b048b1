import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { DEFAULT_PIPELINE } from './app';
import { compilePipeline } from './pipeline-spec';

const BUILTINS = new Set(['noop', 'motion']);
const PARSERS = new Set(['ctffind4']);

function compileError(input: unknown, parsers: ReadonlySet<string> = PARSERS): string {
  try {
    compilePipeline(input, 'p.yml', BUILTINS, parsers);
  } catch (err) {
    expect(err).toMatchObject({ code: 'pipeline_invalid' });
    return (err as Error).message;
  }
  throw new Error('compiled');
}

describe('pipeline steps with metrics', () => {
  test('an external step may name a known parser; it is kept on the compiled step', () => {
    const [step] = compilePipeline({ steps: [{ name: 'ctf', run: ['ctffind', '{{movie}}'], metrics: 'ctffind4' }] }, 'p.yml', BUILTINS, PARSERS);
    expect(step?.spec.metrics).toBe('ctffind4');
    expect(compilePipeline({ steps: [{ name: 'motion', builtin: 'motion' }] }, 'p.yml', BUILTINS)[0]?.spec.metrics).toBeUndefined();
  });

  test('an unknown parser is refused when the pipeline loads, naming the known ones', () => {
    expect(compileError({ steps: [{ name: 'ctf', run: ['ctffind'], metrics: 'gctf' }] })).toBe('p.yml: steps[0] (ctf): no metrics parser "gctf" (known: ctffind4)');
    expect(compileError({ steps: [{ name: 'ctf', run: ['ctffind'], metrics: 'ctffind4' }] }, new Set())).toContain('no metrics parser "ctffind4" (known: none)');
  });

  test('metrics on a built-in step, or an empty parser name, is refused', () => {
    expect(compileError({ steps: [{ name: 'motion', builtin: 'motion', metrics: 'ctffind4' }] })).toContain('steps[0].metrics: metrics names a parser for an external (run) step');
    expect(compileError({ steps: [{ name: 'ctf', run: ['ctffind'], metrics: '' }] })).toContain('steps[0].metrics');
  });
});

test('config/pipelines/builtin.yml is the built-in default pipeline, spelled out', () => {
  const stages = new Set(['motion', 'sum', 'ctf', 'ice', 'picking', 'thumbnails']);
  const file = path.join(__dirname, '..', '..', '..', 'config', 'pipelines', 'builtin.yml');
  const spelled = compilePipeline(yaml.load(fs.readFileSync(file, 'utf8')), file, stages).map((s) => s.spec);
  const builtin = compilePipeline(DEFAULT_PIPELINE, 'default', stages).map((s) => s.spec);
  expect(spelled).toEqual(builtin);
  expect(builtin.map((s) => [s.name, s.builtin, s.outputs])).toEqual([...stages].map((s) => [s, s, [`{{out}}/${s}.metrics.json`]]));
});
