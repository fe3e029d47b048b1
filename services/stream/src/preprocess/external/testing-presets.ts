/**
 * For tests (unit and integration) only.
 * The shipped pipeline presets (config/pipelines/) compiled as the service compiles them: no
 * built-ins, and the parsers of EXTERNAL_PARSERS as the names `metrics:` may use.
 */
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { compilePipeline, type CompiledStep } from '../../pipeline-spec';
import { EXTERNAL_PARSERS } from './index';

/** The repository's config/pipelines, from src/ or dist/ alike (both sit at the same depth). */
export const PRESET_DIR = path.join(__dirname, '../../../../../config/pipelines');
export const PRESETS = ['motioncor2-ctffind4.yml', 'motioncor2-ctffind5.yml', 'relion-ctffind5.yml'] as const;

export interface PresetDoc {
  vars: Record<string, string>;
  steps: ({ name: string; metrics?: string } & Record<string, unknown>)[];
}

export function loadPreset(name: string): PresetDoc {
  return yaml.load(fs.readFileSync(path.join(PRESET_DIR, name), 'utf8')) as PresetDoc;
}

export function compilePreset(doc: PresetDoc, source: string): CompiledStep[] {
  return compilePipeline(doc, source, new Set(), new Set(Object.keys(EXTERNAL_PARSERS)));
}
