import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '@cloudlet/core';
import { isSlurmTime, loadTemplate, loadTemplates, parseTemplate, plainValues, resolveValues, ShellWord } from './job-templates';

const SERVICE = { job_dir: '/scratch/alice/run/cloudlet-job-1', job_name: 'cloudlet-1', job_id: '1', user: 'alice', cluster: 'hpc' };
const ROOTS = ['/scratch/alice'];

const GOOD = `---
description: test job
vars:
  partition: { kind: word, default: test }
  label: { kind: text }
  mode: { kind: choice, choices: [fast, slow], default: fast }
  iterations: { kind: integer, min: 1, max: 10, default: 3 }
  verbose: { kind: boolean, default: false }
defaults: { cpus: 2, memory: 8G }
---
#!/bin/sh
#SBATCH --partition={{partition}} --cpus-per-task={{cpus}} --mem={{memory}} --time={{time}}
{{#if gpus}}#SBATCH --gpus={{gpus}}
{{/if}}cd {{dest}} || exit 1
{{! a comment }}run --in {{source}} --label {{q label}} --mode {{mode}} -n {{iterations}}{{#unless verbose}} -q{{else}} -v{{/unless}} --dir {{job_dir}}/x
`;

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return (err as AppError).message;
  }
  throw new Error('expected an error');
}

describe('parseTemplate', () => {
  it('renders numbers and Slurm words as they are and free text as quoted shell words', () => {
    const t = parseTemplate('good', GOOD);
    expect(t.description).toBe('test job');
    const values = resolveValues(t, { dest: '/scratch/alice/run', label: "it's $(x)", gpus: 1 }, ROOTS);
    const script = t.render(values, SERVICE);
    expect(script).toContain('#SBATCH --partition=test --cpus-per-task=2 --mem=8G --time=01:00:00\n#SBATCH --gpus=1\n');
    expect(script).toContain("cd '/scratch/alice/run' || exit 1");
    expect(script).toContain(`run --in '/scratch/alice/run' --label 'it'\\''s $(x)' --mode fast -n 3 -q --dir '/scratch/alice/run/cloudlet-job-1'/x`);
    expect(plainValues(values)).toMatchObject({ dest: '/scratch/alice/run', source: '/scratch/alice/run', label: "it's $(x)", cpus: 2, memory: '8G', gpus: 1 });
  });

  it('leaves out an untaken branch and takes the else', () => {
    const t = parseTemplate('good', GOOD);
    const script = t.render(resolveValues(t, { dest: '/scratch/alice/run', label: 'l', verbose: true }, ROOTS), SERVICE);
    expect(script).not.toContain('--gpus');
    expect(script).toContain(' -v --dir');
  });

  it.each([
    ['a plain mustache', '#!/bin/sh\necho {{nope}}\n', /line 2: unknown variable "nope"/],
    ['an argument of q', '#!/bin/sh\necho {{q nope}}\n', /unknown variable "nope"/],
    ['an untaken branch', '#!/bin/sh\n{{#if gpus}}echo {{nope}}{{/if}}\n', /unknown variable "nope"/],
    ['an else branch', '#!/bin/sh\n{{#if gpus}}x{{else}}{{nope}}{{/if}}\n', /unknown variable "nope"/],
    ['a block condition', '#!/bin/sh\n{{#if nope}}x{{/if}}\n', /unknown variable "nope"/],
  ])('refuses an unknown variable in %s when it is loaded', (_what, text, message) => {
    expect(problem(() => parseTemplate('t', text))).toMatch(message);
  });

  it.each([
    ['a property of a value', '{{dest.value}}', /dest\.value is not a plain variable name/],
    ['this', '{{this}}', /this is not a plain variable name/],
    ['@root', '{{@root.dest}}', /not a plain variable name/],
    ['a parent path', '{{../dest}}', /not a plain variable name/],
    ['each', '{{#each dest}}x{{/each}}', /only \{\{#if name\}\} and \{\{#unless name\}\} blocks/],
    ['with', '{{#with dest}}{{this}}{{/with}}', /only \{\{#if name\}\} and \{\{#unless name\}\} blocks/],
    ['a partial', '{{> other}}', /PartialStatement is not supported/],
    ['another helper', '{{lookup dest 0}}', /only \{\{name\}\} and \{\{q name\}\} print values/],
    ['q with two arguments', '{{q dest cpus}}', /only \{\{name\}\} and \{\{q name\}\} print values/],
    ['q alone', '{{q}}', /only \{\{name\}\} and \{\{q name\}\} print values/],
    ['hash arguments', '{{q dest x=1}}', /hash arguments are not supported/],
  ])('refuses %s', (_what, body, message) => {
    expect(problem(() => parseTemplate('t', `#!/bin/sh\n${body}\n`))).toMatch(message);
  });

  it.each([
    ['a built-in name redeclared', '---\nvars:\n  dest: { kind: text }\n---\n#!/bin/sh\n', /vars\.dest: the name is built in/],
    ['a default of the wrong kind', '---\nvars:\n  m: { kind: memory, default: lots }\n---\n#!/bin/sh\n', /default of m: .*Slurm memory/],
    ['a bad built-in default', '---\ndefaults: { time: "1:99:00" }\n---\n#!/bin/sh\n', /default of time: .*Slurm time/],
    ['an unknown kind', '---\nvars:\n  m: { kind: float }\n---\n#!/bin/sh\n', /vars\.m\.kind/],
    ['a choice without choices', '---\nvars:\n  m: { kind: choice }\n---\n#!/bin/sh\n', /choices are given exactly when kind is choice/],
    ['choices that are not words', '---\nvars:\n  m: { kind: choice, choices: ["a b"] }\n---\n#!/bin/sh\n', /letters, digits/],
    ['an unknown front matter key', '---\nvarz: {}\n---\n#!/bin/sh\n', /varz/],
    ['broken YAML', '---\nvars: [\n---\n#!/bin/sh\n', /front matter/],
    ['no #! line', 'echo hi\n', /must start with #!/],
    ['a handlebars syntax error', '#!/bin/sh\n{{#if gpus}}\n', /job template/],
    ['a bad name', '#!/bin/sh\n', /the name "Bad Name"/, 'Bad Name'],
  ])('refuses %s', (_what, text, message, name = 't') => {
    expect(problem(() => parseTemplate(name, text))).toMatch(message);
  });
});

describe('resolveValues', () => {
  const t = parseTemplate('good', GOOD);
  const base = { dest: '/scratch/alice/run', label: 'l' };

  it.each([
    ['a number given as a string', { cpus: '4' }, /cpus: .*expected number/],
    ['a fractional cpu count', { cpus: 1.5 }, /cpus: .*expected int/],
    ['too many cpus', { cpus: 100_000 }, /cpus/],
    ['negative gpus', { gpus: -1 }, /gpus/],
    ['memory with a B', { memory: '16GB' }, /memory: Slurm memory/],
    ['memory with a shell command', { memory: '1G;reboot' }, /memory: Slurm memory/],
    ['minutes past 59', { time: '1:60:00' }, /time: Slurm time/],
    ['hours past 23 with days', { time: '1-24' }, /time: Slurm time/],
    ['a time with a command', { time: '$(reboot)' }, /time: Slurm time/],
    ['a word with a space', { partition: 'a b' }, /partition: letters, digits/],
    ['a word with a newline', { partition: 'a\n#SBATCH --x' }, /partition: letters, digits/],
    ['a choice not offered', { mode: 'medium' }, /mode/],
    ['an integer over max', { iterations: 11 }, /iterations/],
    ['a boolean as a string', { verbose: 'yes' }, /verbose/],
    ['a path outside the roots', { dest: '/etc' }, /dest: .*outside the allowed folders/],
    ['a path with ..', { dest: '/scratch/alice/../bob' }, /contains "\.\."/],
    ['a relative path', { dest: 'run' }, /must be absolute/],
    ['a path with a newline', { dest: '/scratch/alice/a\nb' }, /control characters/],
    ['a path with a backslash', { dest: '/scratch/alice/a\\b' }, /backslash/],
    ['text with a newline', { label: 'a\nb' }, /label: control characters/],
    ['text with a carriage return', { label: 'a\rb' }, /label: control characters/],
    ['a name the template does not have', { nope: 1 }, /nope/],
    ['a service name', { job_dir: '/scratch/alice/x' }, /job_dir/],
  ])('refuses %s', (_what, change, message) => {
    expect(problem(() => resolveValues(t, { ...base, ...change }, ROOTS))).toMatch(message);
  });

  it('needs a destination', () => {
    expect(problem(() => resolveValues(t, { label: 'l' }, ROOTS))).toMatch(/dest: required/);
  });

  it('needs a declared required value', () => {
    const r = parseTemplate('r', '---\nvars:\n  must: { kind: word, required: true }\n---\n#!/bin/sh\n{{must}}\n');
    expect(problem(() => resolveValues(r, { dest: '/scratch/alice' }, ROOTS))).toMatch(/must: required/);
  });

  it.each(['5', '90', '5:30', '02:00:00', '100:00:00', '1-0', '1-12:30', '7-23:59:59'])('takes the Slurm time %s', (time) => {
    expect(isSlurmTime(time)).toBe(true);
    expect(() => resolveValues(t, { ...base, time }, ROOTS)).not.toThrow();
  });

  it.each(['', '1:2:3:4', 'a', '1-', '-1', '1--2', '5:60', '1-1:60'])('refuses the Slurm time %j', (time) => {
    expect(isSlurmTime(time)).toBe(false);
  });
});

describe('values that try to inject', () => {
  it('stay inert when the script runs', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-tpl-'));
    try {
      const marker = path.join(dir, 'pwned');
      const t = parseTemplate('echo', `---\nvars:\n  label: { kind: text }\n---\n#!/bin/sh\nprintf '%s|' {{label}} {{q label}} {{dest}}/x > {{dest}}/out\n`);
      const hostile = [`$(touch ${marker})`, `\`touch ${marker}\``, `'; touch ${marker}; '`, `"; touch ${marker}; "`, `\\'$(touch ${marker})`];
      for (const label of hostile) {
        const script = t.render(resolveValues(t, { dest: dir, label }, [dir]), SERVICE);
        execFileSync('sh', ['-c', script]);
        expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe(`${label}|${label}|${dir}/x|`);
        expect(fs.existsSync(marker)).toBe(false);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('offers no way to the raw text of a free-text value', () => {
    const word = new ShellWord("a'b");
    expect(Object.keys(word)).toEqual([]);
    expect(`${word.toString()}`).toBe(`'a'\\''b'`);
    expect(() => new ShellWord('a\nb')).toThrow(/control character/);
  });
});

describe('loadTemplates', () => {
  it('loads every .hbs file and reports each broken one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cloudlet-tpl-'));
    try {
      fs.writeFileSync(path.join(dir, 'good.hbs'), GOOD);
      fs.writeFileSync(path.join(dir, 'bad.hbs'), '#!/bin/sh\n{{nope}}\n');
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
      const { templates, problems } = loadTemplates(dir);
      expect(templates.map((t) => t.name)).toEqual(['good']);
      expect(problems).toEqual([expect.stringMatching(/bad\.hbs: line 2: unknown variable "nope"/)]);
      expect(problem(() => loadTemplate(dir, 'missing'))).toMatch(/unknown job template "missing"/);
      expect(problem(() => loadTemplate(dir, '../good'))).toMatch(/unknown job template/);
      expect(loadTemplates(path.join(dir, 'absent'))).toEqual({ templates: [], problems: [] });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
