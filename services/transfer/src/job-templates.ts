/**
 * Job templates: site-provided (and user-editable) handlebars files that become Slurm batch
 * scripts, cryoSPARC style. A file `<name>.hbs` starts with a YAML front matter declaring its own
 * variables and defaults, then the script:
 *
 *     ---
 *     description: Motion correction on the GPU partition
 *     vars:
 *       partition: { kind: word, default: gpu }
 *       label: { kind: text, required: true }
 *     defaults: { cpus: 4, memory: 16G, time: "02:00:00" }
 *     ---
 *     #!/bin/bash
 *     #SBATCH --partition={{partition}} --cpus-per-task={{cpus}} --mem={{memory}} --time={{time}}
 *     cd {{dest}} && run --label {{label}} --in {{source}}
 *
 * Why values cannot inject: every variable has a kind, checked by a zod schema. Kinds with a
 * closed alphabet (integer, number, boolean, memory, time, word, choice) cannot hold a shell or
 * #SBATCH metacharacter, so they render as they are (`--mem=16G`). Free text (path, text) reaches
 * the template as a ShellWord whose only string form is the single-quoted shell word: `{{dest}}`
 * prints `'/remote/x'`, and `{{dest}}/sub` is still one word to the shell. There is no form
 * that prints the raw text (the value is in a private field handlebars cannot reach), so an
 * unquoted template value can never inject; `{{q value}}` quotes explicitly (and idempotently),
 * for readers who want to see the quoting in the template. Control characters are refused in
 * every value, so no value can end an #SBATCH line either.
 *
 * Unknown variables are errors when the template is loaded: handlebars' strict mode checks only
 * what a render reaches (not helper arguments, not untaken branches), so the parsed template is
 * walked and every name checked, and then rendered once with a full context (as the stream's
 * pipeline-spec.ts does). Templates may use `{{name}}`, `{{q name}}`, `{{#if name}}` and
 * `{{#unless name}}` (with `{{else}}`) and comments: nothing that changes the context or loads
 * partials, so every name in the file is a name of the context.
 */
import fs from 'node:fs';
import path from 'node:path';
import Handlebars from 'handlebars';
import yaml from 'js-yaml';
import { z } from 'zod';
import { AppError, errorMessage, formatIssues, shellQuote } from '@cloudlet/core';
import { confineRemote } from './paths';

const WORD = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MEMORY = /^(0|[1-9][0-9]*)[KMGT]?$/;
const CONTROL = /[\x00-\x1f\x7f]/;
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S. */
export function isSlurmTime(value: string): boolean {
  const m = /^(?:(\d{1,4})-(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?|(\d{1,7})(?::(\d{1,2})(?::(\d{1,2}))?)?)$/.exec(value);
  if (!m) return false;
  const [, days, dh, dm, ds, first, second, third] = m;
  if (days !== undefined) return Number(dh) < 24 && (dm === undefined || Number(dm) < 60) && (ds === undefined || Number(ds) < 60);
  // M:S has seconds second; H:M:S has minutes second and seconds third.
  return (second === undefined || Number(second) < 60) && (third === undefined || Number(third) < 60) && first !== undefined;
}

/** A free-text value: its only string form is a single-quoted shell word. */
export class ShellWord {
  readonly #value: string;

  constructor(value: string) {
    if (CONTROL.test(value)) throw new AppError('a template value contains a control character', { code: 'template_value', status: 400 });
    this.#value = value;
  }

  toString(): string {
    return shellQuote(this.#value);
  }

  /** For our own code (the job record), never for a template. */
  get value(): string {
    return this.#value;
  }
}

export const VAR_KINDS = ['integer', 'number', 'boolean', 'memory', 'time', 'word', 'choice', 'path', 'text'] as const;
export type VarKind = (typeof VAR_KINDS)[number];

const varDecl = z
  .strictObject({
    kind: z.enum(VAR_KINDS),
    description: z.string().optional(),
    default: z.union([z.string(), z.number(), z.boolean()]).optional(),
    required: z.boolean().default(false),
    min: z.number().optional(),
    max: z.number().optional(),
    choices: z.array(z.string().regex(WORD, 'letters, digits, ., _ and -')).min(1).optional(),
  })
  .refine((d) => (d.kind === 'choice') === (d.choices !== undefined), 'choices are given exactly when kind is choice');
export type VarDecl = z.infer<typeof varDecl>;

/** Variables every template has; the request may set the first group, the service sets the rest. */
const REQUEST_VARS: Record<string, VarDecl> = {
  cpus: { kind: 'integer', min: 1, max: 4096, default: 1, required: false },
  gpus: { kind: 'integer', min: 0, max: 64, default: 0, required: false },
  memory: { kind: 'memory', default: '4G', required: false },
  time: { kind: 'time', default: '01:00:00', required: false },
  /** Input data on the cluster; the destination when not given. */
  source: { kind: 'path', required: false },
  /** Where results go on the cluster. */
  dest: { kind: 'path', required: true },
};
const SERVICE_VARS = ['job_dir', 'job_name', 'job_id', 'user', 'cluster'] as const;
export type ServiceValues = Record<(typeof SERVICE_VARS)[number], string>;
const RESERVED = new Set([...Object.keys(REQUEST_VARS), ...SERVICE_VARS, 'q', 'if', 'unless', 'else', 'this']);

const frontMatter = z.strictObject({
  description: z.string().default(''),
  vars: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'lowercase letters, digits and _'), varDecl).default({}),
  /** Defaults for the built-in request variables (cpus, gpus, memory, time). */
  defaults: z.strictObject({ cpus: z.number(), gpus: z.number(), memory: z.string(), time: z.string() }).partial().default({}),
});

export interface JobTemplate {
  name: string;
  file: string;
  description: string;
  /** Every variable a request may set, built-in and declared, with this template's defaults. */
  vars: Readonly<Record<string, VarDecl>>;
  render(values: Readonly<Record<string, unknown>>, service: ServiceValues): string;
}

function invalid(where: string, problems: readonly string[]): AppError {
  const message = `job template ${where}: ${problems.join('; ')}`;
  return new AppError(message, { code: 'template_invalid', status: 400, publicMessage: message });
}

/** The zod schema for one variable; paths are confined under `roots`. */
function kindSchema(name: string, decl: VarDecl, roots: readonly string[]): z.ZodType {
  const bounded = (s: z.ZodNumber): z.ZodNumber => {
    let out = s;
    if (decl.min !== undefined) out = out.min(decl.min);
    if (decl.max !== undefined) out = out.max(decl.max);
    return out;
  };
  const noControl = (s: z.ZodString): z.ZodType<string> => s.refine((v) => !CONTROL.test(v), 'control characters (newline, tab, ...) are not allowed');
  switch (decl.kind) {
    case 'integer':
      return bounded(z.number().int());
    case 'number':
      return bounded(z.number());
    case 'boolean':
      return z.boolean();
    case 'memory':
      return z.string().regex(MEMORY, 'Slurm memory: digits, then K, M, G or T (e.g. 16G)');
    case 'time':
      return z.string().refine(isSlurmTime, 'Slurm time: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (e.g. 02:00:00)');
    case 'word':
      return z.string().max(128).regex(WORD, 'letters, digits, ., _ and - only');
    case 'choice':
      return z.enum(decl.choices as [string, ...string[]]);
    case 'text':
      return noControl(z.string().max(4096));
    case 'path':
      return noControl(z.string()).transform((v, ctx) => {
        // Slurm drops backslashes from output paths; nothing legitimate needs one.
        if (v.includes('\\')) {
          ctx.addIssue({ code: 'custom', message: 'a backslash is not allowed in a cluster path' });
          return z.NEVER;
        }
        try {
          return confineRemote(roots, v);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: `${name}: ${errorMessage(err)}` });
          return z.NEVER;
        }
      });
  }
}

function sample(decl: VarDecl): unknown {
  switch (decl.kind) {
    case 'integer':
    case 'number':
      return decl.min ?? 1;
    case 'boolean':
      return true;
    case 'memory':
      return '1G';
    case 'time':
      return '1:00';
    case 'word':
      return 'x';
    case 'choice':
      return decl.choices?.[0];
    case 'path':
      return new ShellWord('/x');
    case 'text':
      return new ShellWord('x');
  }
}

/** Every name the template mentions must be in `known`; only q, if and unless may be called. */
function checkAst(program: hbs.AST.Program, known: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const at = (node: hbs.AST.Node): string => `line ${node.loc.start.line}`;
  const name = (expr: hbs.AST.Expression, node: hbs.AST.Node): void => {
    if (expr.type === 'StringLiteral' || expr.type === 'NumberLiteral') return;
    const p = expr as hbs.AST.PathExpression;
    if (expr.type !== 'PathExpression' || p.data || p.depth !== 0 || p.parts.length !== 1) {
      problems.push(`${at(node)}: ${(p.original as string | undefined) ?? expr.type} is not a plain variable name`);
    } else if (!known.has(p.original)) {
      problems.push(`${at(node)}: unknown variable "${p.original}" (known: ${[...known].sort().join(', ')})`);
    }
  };
  const walk = (body: readonly hbs.AST.Statement[]): void => {
    for (const node of body) {
      if (node.type === 'ContentStatement' || node.type === 'CommentStatement') continue;
      if (node.type === 'MustacheStatement') {
        const m = node as hbs.AST.MustacheStatement;
        const head = (m.path as hbs.AST.PathExpression).original;
        if (m.hash?.pairs.length) problems.push(`${at(node)}: hash arguments are not supported`);
        if (m.params.length === 0 && head !== 'q') name(m.path, node);
        else if (head === 'q' && m.params.length === 1 && m.params[0]) name(m.params[0], node);
        else problems.push(`${at(node)}: only {{name}} and {{q name}} print values`);
        continue;
      }
      if (node.type === 'BlockStatement') {
        const b = node as hbs.AST.BlockStatement;
        const head = b.path.original;
        if ((head !== 'if' && head !== 'unless') || b.params.length !== 1 || !b.params[0] || b.hash?.pairs.length) {
          problems.push(`${at(node)}: only {{#if name}} and {{#unless name}} blocks are supported`);
          continue;
        }
        name(b.params[0], node);
        walk(b.program.body);
        if (b.inverse) walk(b.inverse.body);
        continue;
      }
      problems.push(`${at(node)}: ${node.type} is not supported in job templates`);
    }
  };
  walk(program.body);
  return problems;
}

const hb = Handlebars.create();
hb.registerHelper('q', (value: unknown) => {
  if (value instanceof ShellWord) return value.toString();
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return new ShellWord(String(value)).toString();
  throw new Error('q needs a value');
});

function readFrontMatter(text: string, file: string): { meta: z.infer<typeof frontMatter>; body: string } {
  const fm = /^---\r?\n([\s\S]*?)\r?\n---\r?\n/.exec(text);
  let meta: unknown = {};
  if (fm) {
    try {
      meta = yaml.load(fm[1] ?? '', { schema: yaml.CORE_SCHEMA }) ?? {};
    } catch (err) {
      throw invalid(file, [`front matter: ${errorMessage(err).split('\n')[0] ?? ''}`]);
    }
  }
  const parsed = frontMatter.safeParse(meta);
  if (!parsed.success) throw invalid(file, formatIssues(parsed.error));
  return { meta: parsed.data, body: fm ? text.slice(fm[0].length) : text };
}

/** Parses and checks one template file's text; every problem at once. */
export function parseTemplate(name: string, text: string, file = `${name}.hbs`): JobTemplate {
  if (!TEMPLATE_NAME.test(name)) throw invalid(file, [`the name ${JSON.stringify(name)} must be lowercase letters, digits, _ and -`]);
  const { meta, body } = readFrontMatter(text, file);
  const problems: string[] = [];
  for (const v of Object.keys(meta.vars)) if (RESERVED.has(v)) problems.push(`vars.${v}: the name is built in`);

  const vars: Record<string, VarDecl> = { ...REQUEST_VARS };
  for (const [k, v] of Object.entries(meta.defaults)) vars[k] = { ...(REQUEST_VARS[k] as VarDecl), default: v };
  Object.assign(vars, meta.vars);
  for (const [k, decl] of Object.entries(vars)) {
    if (decl.default === undefined || decl.kind === 'path') continue;
    const ok = kindSchema(k, decl, []).safeParse(decl.default);
    if (!ok.success) problems.push(`default of ${k}: ${formatIssues(ok.error).join('; ')}`);
  }

  let ast: hbs.AST.Program;
  try {
    ast = hb.parse(body);
  } catch (err) {
    throw invalid(file, [...problems, errorMessage(err).split('\n')[0] ?? '']);
  }
  const known = new Set([...Object.keys(vars), ...SERVICE_VARS]);
  problems.push(...checkAst(ast, known));
  if (problems.length > 0) throw invalid(file, problems);

  const compiled = hb.compile(body, { strict: true, noEscape: true, knownHelpers: { q: true }, knownHelpersOnly: true });
  const render = (values: Readonly<Record<string, unknown>>, service: ServiceValues): string => {
    const context: Record<string, unknown> = { ...values };
    // Our own names and ids are plain words; the job folder is a path like any other.
    for (const [k, v] of Object.entries(service)) context[k] = k !== 'job_dir' && WORD.test(v) ? v : new ShellWord(v);
    const script = compiled(context);
    if (script.includes('\0')) throw new AppError(`job template ${file} rendered a NUL byte`, { code: 'template_invalid', status: 400 });
    return script;
  };
  try {
    const full = Object.fromEntries(Object.entries(vars).map(([k, d]) => [k, sample(d)]));
    const script = render(full, { job_dir: '/x', job_name: 'x', job_id: 'x', user: 'x', cluster: 'x' });
    if (!script.startsWith('#!')) throw new Error('a batch script must start with #! (e.g. #!/bin/bash): sbatch refuses anything else');
  } catch (err) {
    throw invalid(file, [errorMessage(err).split('\n')[0] ?? '']);
  }
  return { name, file, description: meta.description, vars, render };
}

export function loadTemplate(dir: string, name: string): JobTemplate {
  if (!TEMPLATE_NAME.test(name)) throw new AppError(`unknown job template ${JSON.stringify(name)}`, { code: 'unknown_template', status: 400 });
  const file = path.join(dir, `${name}.hbs`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new AppError(`unknown job template ${JSON.stringify(name)} (no ${file})`, { code: 'unknown_template', status: 400 });
    throw err;
  }
  return parseTemplate(name, text, file);
}

/** Every template in `dir`, and every problem of those that do not load. */
export function loadTemplates(dir: string): { templates: JobTemplate[]; problems: string[] } {
  const templates: JobTemplate[] = [];
  const problems: string[] = [];
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.hbs')).sort() : [];
  for (const f of names) {
    try {
      templates.push(loadTemplate(dir, f.slice(0, -'.hbs'.length)));
    } catch (err) {
      problems.push(errorMessage(err));
    }
  }
  return { templates, problems };
}

/**
 * The values a request gives, checked kind by kind, with the template's defaults filled in and
 * free text wrapped as ShellWords. Unknown names and missing required ones are errors.
 */
export function resolveValues(template: JobTemplate, input: unknown, roots: readonly string[]): Record<string, unknown> {
  const shape: Record<string, z.ZodType> = {};
  for (const [k, decl] of Object.entries(template.vars)) shape[k] = kindSchema(k, decl, roots).optional();
  const parsed = z.strictObject(shape).safeParse(input ?? {});
  const fail = (problems: readonly string[]): AppError => {
    const message = `values for job template ${template.name}: ${problems.join('; ')}`;
    return new AppError(message, { code: 'bad_values', status: 400, publicMessage: message });
  };
  if (!parsed.success) throw fail(formatIssues(parsed.error));
  const given = parsed.data as Record<string, unknown>;
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [k, decl] of Object.entries(template.vars)) {
    let v = given[k] ?? (k === 'source' ? given.dest : undefined) ?? decl.default;
    if (v === undefined) {
      if (decl.required || decl.kind === 'path') problems.push(`${k}: required`);
      continue;
    }
    if (decl.kind === 'path' && given[k] === undefined && k !== 'source') {
      // A default path is checked like a given one.
      const ok = kindSchema(k, decl, roots).safeParse(v);
      if (!ok.success) problems.push(...formatIssues(ok.error));
      v = ok.data ?? v;
    }
    values[k] = decl.kind === 'path' || decl.kind === 'text' ? new ShellWord(v as string) : v;
  }
  if (problems.length > 0) throw fail(problems);
  return values;
}

/** The plain form of resolved values, for the job record and the API. */
export function plainValues(values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v instanceof ShellWord ? v.value : v]));
}
