/**
 * Renders the OOD apps' ERB files with real Ruby, bound the way the OOD dashboard binds each
 * kind of file (ood-apps/test/render_erb.rb says how), and loads YAML with Ruby's
 * YAML.safe_load, the parser OOD itself uses: js-yaml accepts files that OOD refuses (a
 * timestamp, for one), so "it parses" is only checked where it counts.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const OOD_TEST_DIR = path.join(REPO_ROOT, 'ood-apps', 'test');
export const RENDER_SCRIPT = path.join(OOD_TEST_DIR, 'render_erb.rb');

export type ErbKind = 'form' | 'submit' | 'template' | 'view' | 'info';

export interface RenderRequest {
  kind: ErbKind;
  /** Absolute path of the .erb file. */
  file: string;
  /** Form values, as OOD hands them over: strings. */
  context?: Record<string, string>;
  /** For template files: the session's id and staged directory. */
  session?: { id?: string; staged_root: string };
  /** For submit.yml.erb and info.md.erb. */
  staged_root?: string;
  /** For view.html.erb: the connection values, or a connection.yml to load as OOD does. */
  connection?: Record<string, unknown>;
  connection_file?: string;
  /** For info.md.erb. */
  user_context?: Record<string, string>;
  running?: boolean;
}

export interface RubyOptions {
  /** Extra environment for the Ruby process (the dashboard's environment, for form.yml.erb). */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export class RenderError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function runRuby(request: object, options: RubyOptions): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'ruby',
      [RENDER_SCRIPT],
      { env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 30_000, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new RenderError(`ruby ${path.basename(RENDER_SCRIPT)} failed: ${stderr.trim() || err.message}`, stderr));
        else resolve({ stdout, stderr });
      },
    );
    child.stdin?.end(JSON.stringify(request));
  });
}

/** The rendered file. Rejects with a RenderError carrying Ruby's message when rendering raises. */
export async function renderErb(request: RenderRequest, options: RubyOptions = {}): Promise<string> {
  return (await runRuby(request, options)).stdout;
}

/** Like renderErb, with what the file wrote on stderr (form.yml.erb logs relay failures there). */
export async function renderErbWithLog(request: RenderRequest, options: RubyOptions = {}): Promise<{ output: string; log: string }> {
  const { stdout, stderr } = await runRuby(request, options);
  return { output: stdout, log: stderr };
}

/** `text` loaded the way OOD loads its YAML (Psych's safe_load), returned as plain JSON data. */
export async function loadYamlAsOod(text: string): Promise<unknown> {
  return JSON.parse((await runRuby({ kind: 'yaml', text }, {})).stdout) as unknown;
}
