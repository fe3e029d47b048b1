import fs from 'node:fs';
import path from 'node:path';
import { formatIssues, loadConfig } from '@cloudlet/core';
import { tempDir } from '@cloudlet/core/testing';
import { preprocessFileProblems, stageOptions, streamSection } from './config';

function problems(preprocess: unknown): string[] {
  const parsed = streamSection.safeParse({ preprocess });
  return parsed.success ? [] : formatIssues(parsed.error, ['stream']);
}

describe('stream.preprocess', () => {
  test('defaults give every stage its options: 300 kV, 2.7 mm, 0.07, no dose weighting, no gain, header pixel size', () => {
    const options = stageOptions(streamSection.parse({}).preprocess);
    expect(options.optics).toEqual({ voltage_kV: 300, cs_mm: 2.7, amplitudeContrast: 0.07, dosePerFrame_ePerA2: 0 });
    expect(options).toMatchObject({ motion: { bin: 'auto', patches: null }, ctf: { ccThreshold: 0.3, phaseShift: false }, picking: { threshold: 6 }, thumbnails: { maxSide: 512 } });
    expect(streamSection.parse({}).preprocess.worker_memory_mb).toBe(2048);
  });

  test('snake_case keys map onto the stage options, gain orientation included', () => {
    const p = streamSection.parse({
      preprocess: {
        optics: { pixel_size_a: 0.83, voltage_kv: 200, cs_mm: 0.01, amplitude_contrast: 0.1, dose_per_frame: 1.2, gain: { file: '/g.mrc', flip_y: true, rotate: 3 } },
        motion: { bin: 4, iterations: 5, patches: [5, 4] },
        sum: { reduced_bin: 4 },
        ctf: { tile: 256, min_res_a: 25, max_res_a: 4, min_defocus_a: 3000, max_defocus_a: 40000, phase_shift: true, cc_threshold: 0.5 },
        picking: { radius_min_a: 30, radius_max_a: 60, threshold: 3 },
        thumbnails: { max_side: 256 },
      },
    }).preprocess;
    expect(stageOptions(p)).toEqual({
      optics: { pixelSize_A: 0.83, voltage_kV: 200, cs_mm: 0.01, amplitudeContrast: 0.1, dosePerFrame_ePerA2: 1.2, gain: { file: '/g.mrc', flipX: false, flipY: true, rotate: 3 } },
      motion: { bin: 4, iterations: 5, patches: [5, 4] },
      sum: { reducedBin: 4 },
      ctf: { tile: 256, minRes_A: 25, maxRes_A: 4, minDefocus_A: 3000, maxDefocus_A: 40000, phaseShift: true, ccThreshold: 0.5 },
      picking: { radiusMin_A: 30, radiusMax_A: 60, threshold: 3 },
      thumbnails: { maxSide: 256 },
    });
  });

  test.each([
    [{ optics: { pixel_size_a: 0 } }, 'stream.preprocess.optics.pixel_size_a'],
    [{ optics: { pixel_size_a: -1 } }, 'stream.preprocess.optics.pixel_size_a'],
    [{ optics: { voltage_kv: 0 } }, 'stream.preprocess.optics.voltage_kv'],
    [{ optics: { amplitude_contrast: 1 } }, 'stream.preprocess.optics.amplitude_contrast'],
    [{ optics: { dose_per_frame: -0.5 } }, 'stream.preprocess.optics.dose_per_frame'],
    [{ optics: { gain: { file: '' } } }, 'stream.preprocess.optics.gain.file'],
    [{ optics: { gain: { file: '/g.mrc', rotate: 4 } } }, 'stream.preprocess.optics.gain.rotate'],
    [{ optics: { gain: { file: '/g.mrc', flipx: true } } }, 'stream.preprocess.optics.gain.flipx: unknown key'],
    [{ motion: { bin: 0 } }, 'stream.preprocess.motion.bin'],
    [{ motion: { bin: 'big' } }, 'stream.preprocess.motion.bin'],
    [{ motion: { patches: [5] } }, 'stream.preprocess.motion.patches'],
    [{ ctf: { tile: 300 } }, 'stream.preprocess.ctf.tile: a power of two'],
    [{ ctf: { min_res_a: 4, max_res_a: 5 } }, 'stream.preprocess.ctf.min_res_a: min_res_a must be a larger distance'],
    [{ ctf: { min_defocus_a: 60000 } }, 'stream.preprocess.ctf.min_defocus_a: min_defocus_a must be below'],
    [{ picking: { radius_min_a: 90, radius_max_a: 80 } }, 'stream.preprocess.picking.radius_min_a'],
    [{ thumbnails: { max_side: 8 } }, 'stream.preprocess.thumbnails.max_side'],
    [{ worker_memory_mb: 16 }, 'stream.preprocess.worker_memory_mb'],
    [{ colour: 'blue' }, 'stream.preprocess.colour: unknown key'],
  ])('%j is refused: %s', (preprocess, expected) => {
    expect(problems(preprocess).join('\n')).toContain(expected);
  });

  test('a gain reference that does not exist or is a directory is a problem found at start', () => {
    const dir = tempDir();
    const gain = path.join(dir, 'gain.mrc');
    const parse = (file: string): string[] => preprocessFileProblems(streamSection.parse({ preprocess: { optics: { gain: { file } } } }).preprocess);
    expect(parse(gain)).toEqual([`stream.preprocess.optics.gain.file: ${gain} does not exist`]);
    expect(parse(dir)).toEqual([`stream.preprocess.optics.gain.file: ${dir} is not a file`]);
    fs.writeFileSync(gain, 'x');
    expect(parse(gain)).toEqual([]);
    expect(preprocessFileProblems(streamSection.parse({}).preprocess)).toEqual([]);
  });
});

test("config/cloudlet.example.yml's stream section is valid and runs the built-in pipeline on the simulator's folder", () => {
  const stream = loadConfig({ stream: streamSection }, { file: path.join(__dirname, '..', '..', '..', 'config', 'cloudlet.example.yml'), env: {} }).stream;
  expect(stream.pipeline_file).toBe('');
  expect(stream.roots.map((r) => r.path)).toEqual(['./var/detector/krios-sim']);
  expect(stageOptions(stream.preprocess).optics).toMatchObject({ dosePerFrame_ePerA2: 3.75, voltage_kV: 300 });
});
