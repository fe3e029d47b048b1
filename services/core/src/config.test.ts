import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { loadConfig, siteSection } from './config';
import { ConfigError } from './errors';
import { tempDir } from './testing';

const demo = z
  .strictObject({
    listen_port: z.number().int().default(8080),
    name: z.string().default('x'),
    nested: z.strictObject({ flag: z.boolean().default(false), list: z.array(z.string()).default([]) }).prefault({}),
  })
  .prefault({});

function writeConfig(text: string): string {
  const file = path.join(tempDir(), 'cloudlet.yml');
  fs.writeFileSync(file, text);
  return file;
}

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  test('defaults apply when there is no file', () => {
    const config = loadConfig({ portal: demo, site: siteSection }, { env: {} });
    expect(config.portal.listen_port).toBe(8080);
    expect(config.portal.nested.flag).toBe(false);
    expect(config.site.state_dir).toBe('./var');
  });

  test('the file overrides defaults and the environment overrides the file', () => {
    const file = writeConfig('portal:\n  listen_port: 9000\n  name: from-file\n');
    const config = loadConfig({ portal: demo }, { file, env: { CLOUDLET_PORTAL__LISTEN_PORT: '9100', CLOUDLET_PORTAL__NESTED__LIST: '[a, b]', CLOUDLET_PORTAL__NESTED__FLAG: 'true' } });
    expect(config.portal).toEqual({ listen_port: 9100, name: 'from-file', nested: { flag: true, list: ['a', 'b'] } });
  });

  test('every problem is reported at once, each with its path', () => {
    const file = writeConfig('portal:\n  listen_port: "eighty"\n  colour: blue\n  nested: { flag: 3 }\nbogus: {}\n');
    const problems = problemsOf(() => loadConfig({ portal: demo }, { file, env: { CLOUDLET_NOPE__X: '1' } }));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^bogus: unknown section/),
        expect.stringMatching(/^CLOUDLET_NOPE__X: unknown section/),
        expect.stringMatching(/^portal\.listen_port: /),
        'portal.colour: unknown key',
        expect.stringMatching(/^portal\.nested\.flag: /),
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  test('a missing file is a clear error, not an empty config', () => {
    expect(problemsOf(() => loadConfig({ portal: demo }, { file: '/nonexistent/cloudlet.yml', env: {} }))).toEqual(['file not found']);
  });

  test('malformed YAML and a non-mapping document are refused', () => {
    expect(problemsOf(() => loadConfig({ portal: demo }, { file: writeConfig('portal: [unclosed\n'), env: {} }))[0]).toMatch(/not valid YAML/);
    expect(problemsOf(() => loadConfig({ portal: demo }, { file: writeConfig('- a\n- b\n'), env: {} }))[0]).toMatch(/mapping of sections/);
  });

  test('the result is frozen all the way down', () => {
    const config = loadConfig({ portal: demo }, { env: {} });
    expect(Object.isFrozen(config.portal.nested)).toBe(true);
    expect(() => {
      (config.portal as { listen_port: number }).listen_port = 1;
    }).toThrow(TypeError);
  });

  test('sections owned by other services are not validated here, but must be known names', () => {
    const file = writeConfig('relay:\n  anything: goes\nportal: {}\n');
    expect(loadConfig({ portal: demo }, { file, env: {} }).portal.listen_port).toBe(8080);
  });
});
