/**
 * One YAML file, one schema. Each service names the sections it needs; this module reads the
 * file, applies `CLOUDLET_<SECTION>__<KEY>` environment overrides, validates every requested
 * section strictly (unknown keys are errors), reports every problem at once, and freezes the
 * result. Sections owned by other services are left to them, but a section name nobody owns
 * is an error here, so a typo at the top level never goes unnoticed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { z } from 'zod';
import { ConfigError, errorMessage } from './errors';

/** Every section any cloudlet service reads. A new service adds its name here. */
export const SECTION_NAMES = [
  'site',
  'usermap',
  'instruments',
  'portal',
  'relay',
  'sim',
  'stream',
  'launcher',
  'transfer',
] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

export const ENV_PREFIX = 'CLOUDLET_';

export const siteSection = z
  .strictObject({
    name: z.string().min(1).default('Cloudlet'),
    /** Where services keep state (ledgers, sessions, generated secrets). */
    state_dir: z.string().min(1).default('./var'),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .prefault({});
export type SiteConfig = z.infer<typeof siteSection>;

export type SectionSchemas = Partial<Record<SectionName, z.ZodType>>;
export type ConfigOf<S extends SectionSchemas> = { readonly [K in keyof S]: S[K] extends z.ZodType ? Readonly<z.infer<S[K]>> : never };

export interface LoadConfigOptions {
  /** The YAML file; when absent only defaults and the environment apply. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export function loadConfig<S extends SectionSchemas>(sections: S, options: LoadConfigOptions = {}): ConfigOf<S> {
  const source = options.file ?? '(defaults)';
  const problems: string[] = [];
  const raw = options.file === undefined ? {} : readYamlObject(options.file);

  for (const key of Object.keys(raw)) {
    if (!(SECTION_NAMES as readonly string[]).includes(key)) {
      problems.push(`${key}: unknown section (known: ${SECTION_NAMES.join(', ')})`);
    }
  }
  applyEnvOverrides(raw, options.env ?? process.env, problems);

  const result: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(sections) as [string, z.ZodType][]) {
    const parsed = schema.safeParse(raw[name] ?? undefined);
    if (parsed.success) {
      result[name] = parsed.data;
    } else {
      problems.push(...formatIssues(parsed.error, [name]));
    }
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(result) as ConfigOf<S>;
}

function readYamlObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : errorMessage(err);
    throw new ConfigError(path.resolve(file), [why]);
  }
  let doc: unknown;
  try {
    doc = yaml.load(text, { filename: file, schema: yaml.CORE_SCHEMA });
  } catch (err) {
    throw new ConfigError(path.resolve(file), [`not valid YAML: ${errorMessage(err)}`]);
  }
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(path.resolve(file), ['expected a mapping of sections at the top level']);
  }
  return doc as Record<string, unknown>;
}

/**
 * `CLOUDLET_PORTAL__LISTEN_PORT=0` sets portal.listen_port. Values are YAML scalars or flow
 * collections, so numbers, booleans and `[a, b]` lists work; quote a value to keep it a string.
 */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const parts = name.slice(ENV_PREFIX.length).toLowerCase().split('__');
    if (parts.length < 2) continue; // CLOUDLET_CONFIG and friends are not overrides
    const [section] = parts;
    if (!section || !(SECTION_NAMES as readonly string[]).includes(section)) {
      problems.push(`${name}: unknown section "${section ?? ''}"`);
      continue;
    }
    let parsed: unknown;
    try {
      parsed = yaml.load(value, { schema: yaml.CORE_SCHEMA });
    } catch (err) {
      problems.push(`${name}: not a valid YAML value: ${errorMessage(err)}`);
      continue;
    }
    setPath(raw, parts, parsed ?? '');
  }
}

function setPath(target: Record<string, unknown>, parts: string[], value: unknown): void {
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      node[part] = {};
    }
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** `portal.oidc.client_id: expected string, received number` style lines, one per problem. */
export function formatIssues(error: z.ZodError, prefix: (string | number)[] = []): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    const where = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${joinPath([...where, key])}: unknown key`);
    } else {
      lines.push(`${joinPath(where)}: ${issue.message}`);
    }
  }
  return lines;
}

export function joinPath(parts: (string | number)[]): string {
  return parts.reduce<string>((acc, part) => {
    if (typeof part === 'number') return `${acc}[${part}]`;
    return acc === '' ? part : `${acc}.${part}`;
  }, '');
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}
