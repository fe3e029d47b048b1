/**
 * The pipeline, from YAML: ordered steps, each a built-in (registered by the pre-processing
 * code) or an external command. External commands are argument vectors whose elements are
 * handlebars templates: a value lands inside one argument and never reaches a shell, so a movie
 * named `$(reboot).mrc` is just a file name. Unknown template variables are errors, found when
 * the pipeline is loaded, not on the thousandth movie.
 */
import Handlebars from 'handlebars';
import { z } from 'zod';
import { AppError, formatIssues } from '@cloudlet/core';

const step = z
  .strictObject({
    name: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'lowercase letters, digits, _ and -'),
    builtin: z.string().min(1).optional(),
    run: z.array(z.string()).min(1).optional(),
    /** Files the step leaves behind (templates). Present and non-empty = the step already ran. */
    outputs: z.array(z.string()).default([]),
    timeout_s: z.number().positive().default(600),
    retries: z.number().int().min(0).max(10).default(1),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
    /** External steps: the parser that reads the step's outputs into the movie's metrics once it succeeds. */
    metrics: z.string().min(1).optional(),
  })
  .refine((s) => (s.builtin === undefined) !== (s.run === undefined), 'exactly one of builtin or run')
  .refine((s) => s.metrics === undefined || s.run !== undefined, { message: 'metrics names a parser for an external (run) step; built-in steps report their own', path: ['metrics'] });

export const pipelineSchema = z.strictObject({
  steps: z.array(step).min(1),
  /** Site values templates may use as {{vars.name}}. */
  vars: z.record(z.string(), z.string()).default({}),
});

export type PipelineSpec = z.infer<typeof pipelineSchema>;
export type StepSpec = PipelineSpec['steps'][number];

/** What a template sees for one movie. */
export interface TemplateContext {
  movie: string;
  name: string;
  stem: string;
  out: string;
  id: number;
  root: string;
  vars: Record<string, string>;
}

export const TEMPLATE_NAMES = ['movie', 'name', 'stem', 'out', 'id', 'root', 'vars'] as const;

export interface CompiledStep {
  spec: StepSpec;
  argv(ctx: TemplateContext): string[];
  outputs(ctx: TemplateContext): string[];
}

function compile(template: string, where: string, vars: Record<string, string>): (ctx: TemplateContext) => string {
  let fn: HandlebarsTemplateDelegate<TemplateContext>;
  try {
    fn = Handlebars.compile<TemplateContext>(template, { noEscape: true, strict: true });
    // Strict mode throws on a missing name only when rendered: render once with a full context now.
    fn({ movie: '/m.mrc', name: 'm.mrc', stem: 'm', out: '/o', id: 1, root: '/r', vars });
  } catch (err) {
    throw new AppError(`${where}: ${(err as Error).message.split('\n')[0] ?? ''}`, { code: 'pipeline_invalid', status: 400 });
  }
  return (ctx) => fn(ctx);
}

export function compilePipeline(input: unknown, source: string, builtins: ReadonlySet<string>, parsers: ReadonlySet<string> = new Set()): CompiledStep[] {
  const parsed = pipelineSchema.safeParse(input);
  if (!parsed.success) throw new AppError(`${source}: ${formatIssues(parsed.error).join('; ')}`, { code: 'pipeline_invalid', status: 400 });
  const { steps, vars } = parsed.data;
  const names = new Set<string>();
  return steps.map((s, i) => {
    const where = `${source}: steps[${i}] (${s.name})`;
    if (names.has(s.name)) throw new AppError(`${where}: a second step named ${s.name}`, { code: 'pipeline_invalid', status: 400 });
    names.add(s.name);
    if (s.builtin !== undefined && !builtins.has(s.builtin)) {
      throw new AppError(`${where}: no built-in step "${s.builtin}" (known: ${[...builtins].join(', ')})`, { code: 'pipeline_invalid', status: 400 });
    }
    if (s.metrics !== undefined && !parsers.has(s.metrics)) {
      throw new AppError(`${where}: no metrics parser "${s.metrics}" (known: ${[...parsers].join(', ') || 'none'})`, { code: 'pipeline_invalid', status: 400 });
    }
    const args = (s.run ?? []).map((a, j) => compile(a, `${where}.run[${j}]`, vars));
    const outs = s.outputs.map((o, j) => compile(o, `${where}.outputs[${j}]`, vars));
    return {
      spec: s,
      argv: (ctx) => args.map((a) => a({ ...ctx, vars })),
      outputs: (ctx) => outs.map((o) => o({ ...ctx, vars })),
    };
  });
}
