/**
 * `cloudlet-usermap`: the admin's tool for the usermap and the enrollment queue. Every write
 * goes through `updateUsermapFile` (locked, validated against the current file, atomic) and
 * recompiles the OOD index.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AppError, ConfigError, createLogger, errorMessage, loadConfig } from '@cloudlet/core';
import { commands, type CommandContext } from './commands';
import { usermapSection } from './config';

export const USAGE = `usage: cloudlet-usermap [--config FILE] [--file USERMAP] <command> [arguments]

Reading:
  validate                         check the usermap; print every problem with its path
  list [--all] [--json]            people (active and suspended; --all adds retired)
  show <person>                    one person, as YAML
  lookup <url-encoded-user>        what OOD's user_map_cmd would print, via the library
  compile                          write the OOD index now
  watch                            keep the OOD index current while the file changes

Changing (each write is validated, atomic and recompiles the index):
  add <person> --name NAME --username USER [--uid N] [--gid N] [--groups a,b]
  link <person> --iss URL --sub SUB [--idp NAME] [--eppn EPPN] [--email EMAIL]
  unlink <person> --iss URL --sub SUB
  suspend <person> | activate <person> | retire <person>
  role <person> <instrument> operator|viewer|none
  cluster <person> <cluster> --username USER --uid N --gid N [--path NAME=/abs/path ...] [--verified]

Enrollment queue (unmapped sign-ins):
  enroll list [--all]
  enroll approve <request> --person <person>           link to an existing person
  enroll approve <request> --new <person> --username USER [--name NAME] [--uid N] [--gid N] [--groups a,b]
  enroll reject <request> [--reason TEXT]
`;

const OPTIONS: ParseArgsConfig['options'] = {
  config: { type: 'string' },
  file: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  all: { type: 'boolean' },
  json: { type: 'boolean' },
  name: { type: 'string' },
  username: { type: 'string' },
  uid: { type: 'string' },
  gid: { type: 'string' },
  groups: { type: 'string' },
  iss: { type: 'string' },
  sub: { type: 'string' },
  idp: { type: 'string' },
  eppn: { type: 'string' },
  email: { type: 'string' },
  path: { type: 'string', multiple: true },
  verified: { type: 'boolean' },
  person: { type: 'string' },
  new: { type: 'string' },
  reason: { type: 'string' },
  by: { type: 'string' },
};

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

/** Runs one command; returns the exit code (0 ok, 1 refused or failed, 2 usage). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    io.err(`${errorMessage(err)}\n\n${USAGE}`);
    return 2;
  }
  const [name, ...rest] = parsed.positionals;
  if (parsed.values.help || !name) {
    (parsed.values.help ? io.out : io.err)(USAGE);
    return parsed.values.help ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    io.err(`unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  try {
    const configFile = str(parsed.values.config) ?? io.env.CLOUDLET_CONFIG;
    const config = loadConfig({ usermap: usermapSection }, { file: configFile, env: io.env }).usermap;
    const ctx: CommandContext = {
      config: { ...config, file: str(parsed.values.file) ?? config.file },
      args: rest,
      opts: parsed.values,
      io,
      log: createLogger({ name: 'usermap', level: io.env.CLOUDLET_LOG_LEVEL ?? 'warn' }),
    };
    return await command(ctx);
  } catch (err) {
    if (err instanceof ConfigError) io.err(`${err.message}\n`);
    else if (err instanceof AppError) io.err(`${err.message}\n`);
    else io.err(`error: ${errorMessage(err)}\n`);
    return err instanceof AppError && err.code === 'usage' ? 2 : 1;
  }
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
