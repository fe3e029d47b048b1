/**
 * Each shipped preset compiles against the real pipeline schema, names parsers that exist, keeps
 * hostile movie names inside single arguments, and hands each step the files the previous step
 * declared (and the parser looks for).
 */
import path from 'node:path';
import type { TemplateContext } from '../../pipeline-spec';
import { parseAnswerArgs } from './ctffind-run';
import { ctffindCandidates } from './ctffind';
import { EXTERNAL_PARSERS } from './index';
import { logCandidates } from './motioncor2';
import { compilePreset, loadPreset, PRESETS } from './testing-presets';

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', '/bin/sh', '/bin/bash', '/usr/bin/env']);

/** A movie name that would run a command if any step put it into shell text. */
const hostile: Omit<TemplateContext, 'vars'> = {
  movie: "/data/grid 1/$(touch /tmp/pwned);x 'q'.tif",
  name: "$(touch /tmp/pwned);x 'q'.tif",
  stem: "$(touch /tmp/pwned);x 'q'",
  out: '/srv/out/000001_x_q',
  id: 1,
  root: '/data/grid 1',
};

describe.each(PRESETS)('%s', (file) => {
  const doc = loadPreset(file);
  const steps = compilePreset(doc, file);
  const render = (i: number): { argv: string[]; outputs: string[] } => {
    const s = steps[i];
    if (!s) throw new Error(`no step ${i}`);
    return { argv: s.argv({ ...hostile, vars: doc.vars }), outputs: s.outputs({ ...hostile, vars: doc.vars }) };
  };

  it('names a parser that exists on every external program step', () => {
    const named = doc.steps.filter((s) => s.metrics !== undefined).map((s) => s.metrics as string);
    expect(named.length).toBeGreaterThanOrEqual(2);
    for (const m of named) expect(Object.keys(EXTERNAL_PARSERS)).toContain(m);
  });

  it('compiles, and no step goes through a shell; the movie stays one argument', () => {
    expect(steps.length).toBe(doc.steps.length);
    steps.forEach((_s, i) => {
      const { argv } = render(i);
      expect(SHELLS.has(argv[0] ?? '')).toBe(false);
      expect(argv.some((a) => a === '-c')).toBe(false);
      if (argv.some((a) => a.includes('pwned'))) expect(argv.filter((a) => a.includes('$(touch'))).toEqual(argv.filter((a) => a.includes('pwned')));
    });
    expect(steps.some((_s, i) => render(i).argv.includes(hostile.movie))).toBe(true);
  });

  it('feeds CTFFIND the sum the motion step declared, and writes where the ctffind parser looks', () => {
    const ctfIndex = doc.steps.findIndex((s) => String(s.metrics).startsWith('ctffind'));
    const { argv, outputs } = render(ctfIndex);
    const run = parseAnswerArgs(argv.slice(2));
    expect(argv[1]).toMatch(/\/preprocess\/external\/ctffind-run\.js$/);
    expect(run.command).toBe(doc.vars.ctffind);
    const declaredBefore = Array.from({ length: ctfIndex }, (_x, i) => render(i).outputs).flat();
    expect(declaredBefore).toContain(run.answers[0]);
    expect(run.answers[1]).toBe(path.join(hostile.out, `${hostile.stem}_ctf.mrc`));
    expect(outputs).toEqual([ctffindCandidates(hostile)[0]]);
    // Pixel size, kV, Cs, amplitude contrast in CTFFIND's order, then yes/no answers ending in "no expert options".
    expect(run.answers.slice(2, 6)).toEqual([doc.vars.pixel_size, doc.vars.voltage, doc.vars.cs, doc.vars.amplitude_contrast]);
    expect(run.answers.slice(12, 15)).toEqual(['no', 'yes', 'yes']);
    expect(run.answers.at(-1)).toBe('no');
    expect(run.answers.length).toBe(doc.steps[ctfIndex]?.metrics === 'ctffind5' ? 20 : 19);
  });

  it('declares the motion log or STAR the motion parser reads', () => {
    const motionIndex = doc.steps.findIndex((s) => s.metrics === 'motioncor2' || s.metrics === 'relion_motioncorr');
    const { outputs } = render(motionIndex);
    if (doc.steps[motionIndex]?.metrics === 'motioncor2') expect(logCandidates(hostile)).toContain(outputs[1]);
    else expect(outputs).toContain(path.join(hostile.out, 'relion/movie.star'));
  });
});
