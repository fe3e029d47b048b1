import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@cloudlet/core';
import { tempDir, waitFor } from '@cloudlet/core/testing';
import { type DetectorConfig, detectorSection, simSection } from './config';
import { createDetector, type Detector } from './detector';
import { MicroscopeState } from './state';
import { cloudletLabels, readMrc, readTiff } from './testing/movie-readers';

let dir: string;
let state: MicroscopeState;
let detector: Detector | undefined;
let logs: Record<string, unknown>[];

function start(config: Partial<DetectorConfig>, exposureIntervalMs = 60_000): Promise<void> {
  state = new MicroscopeState({ exposureIntervalMs });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const parsed = detectorSection.parse({ enabled: true, output_dir: dir, frames: 2, width: 32, height: 32, write_seconds: 0, ...config });
  detector = createDetector({ config: parsed, state, log: createLogger({ name: 'instrument-sim', destination: sink }) });
  return detector.start();
}

function movies(): string[] {
  return fs.readdirSync(dir).sort();
}

function written(): Record<string, unknown>[] {
  return logs.filter((l) => l.msg === 'movie written');
}

describe('detector config', () => {
  test('off by default, with defaults for everything', () => {
    expect(simSection.parse({}).detector).toEqual({
      enabled: false,
      output_dir: './var/detector/krios-sim',
      prefix: 'FoilHole',
      format: 'mrc',
      mrc_mode: 1,
      tiff_compression: 'lzw',
      frames: 8,
      width: 512,
      height: 512,
      pixel_size_a: 1,
      exposure_s: 2,
      write_seconds: 2,
      write_chunks: 20,
      trigger: 'exposure',
      rate_per_hour: 320,
    });
  });

  test.each([{ bogus: 1 }, { prefix: '../x' }, { prefix: 'a/b' }, { format: 'eer' }, { mrc_mode: 2 }, { frames: 0 }, { width: 8 }, { write_seconds: -1 }, { rate_per_hour: 0 }])('refuses %j', (detector) => {
    expect(simSection.safeParse({ detector }).success).toBe(false);
  });
});

describe('detector', () => {
  beforeEach(() => {
    dir = tempDir('cloudlet-detector-');
    logs = [];
  });

  afterEach(async () => {
    await detector?.stop();
    detector = undefined;
    state.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('writes one movie per exposure while acquiring, with the microscope settings of that moment', async () => {
    await start({}, 100);
    state.setDefocus(-2.3);
    state.setDoseRate(20);
    state.setStage(12.5, -3);
    state.setValves(true);
    state.startAcquiring();
    await waitFor(() => written().length >= 2, 10_000, 'two movies');
    state.stopAcquiring();
    expect(movies().slice(0, 2)).toEqual(['FoilHole_00001.mrc', 'FoilHole_00002.mrc']);
    const m = readMrc(path.join(dir, 'FoilHole_00001.mrc'));
    expect(m).toMatchObject({ nx: 32, ny: 32, nz: 2, mode: 1, fileBytes: 1024 + 2 * 32 * 32 * 2 });
    const labels = cloudletLabels(m.labels);
    expect(labels).toMatchObject({ defocus_um: '-2.3', dose_e_px_s: '20', frame_s: '1.0', mag: '75000', pixel_A: '1.0', stage_um: '12.5,-3' });
    expect(labels.drift_px_per_frame).toMatch(/^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/);
    expect(written()[0]).toMatchObject({ path: path.join(dir, 'FoilHole_00001.mrc'), bytes: 1024 + 2 * 32 * 32 * 2, seconds: expect.any(Number) as unknown, number: 1 });
  });

  test('numbers continue after the highest movie already there, so a restart overwrites nothing', async () => {
    fs.writeFileSync(path.join(dir, 'FoilHole_00041.tiff'), 'old');
    fs.writeFileSync(path.join(dir, 'Other_00099.mrc'), 'old');
    await start({ format: 'tiff' }, 100);
    state.setValves(true);
    state.startAcquiring();
    await waitFor(() => written().length >= 1, 10_000, 'a movie');
    state.stopAcquiring();
    expect(movies()).toContain('FoilHole_00042.tiff');
    expect(fs.readFileSync(path.join(dir, 'FoilHole_00041.tiff'), 'utf8')).toBe('old');
    const pages = readTiff(path.join(dir, 'FoilHole_00042.tiff'));
    expect(pages).toHaveLength(2);
    expect(JSON.parse(pages[0]?.tags.get(270) as string)).toMatchObject({ defocus_um: -1.5, mag: 75000 });
  });

  test('rate mode writes rate_per_hour movies while acquiring, without panel exposures, and stops when acquisition does', async () => {
    await start({ trigger: 'rate', rate_per_hour: 36_000 });
    expect(movies()).toEqual([]);
    state.setValves(true);
    state.startAcquiring();
    await waitFor(() => written().length >= 3, 10_000, 'three movies');
    state.stopAcquiring();
    expect(state.snapshot().exposures).toBe(0);
    await waitFor(() => detector?.stats().writing === undefined && detector?.stats().queued === 0, 5000, 'the detector to go idle');
    const count = movies().length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(movies()).toHaveLength(count);
  });

  test('drops exposures beyond a short backlog and says so; stopping abandons the movie being written', async () => {
    await start({ write_seconds: 5 }, 20);
    state.setValves(true);
    state.startAcquiring();
    await waitFor(() => (detector?.stats().dropped ?? 0) > 0, 10_000, 'a dropped exposure');
    expect(logs.some((l) => l.msg === 'exposure dropped: detector busy')).toBe(true);
    expect(detector?.stats()).toMatchObject({ queued: 4, writing: path.join(dir, 'FoilHole_00001.mrc') });
    expect(movies()).toEqual(['FoilHole_00001.mrc']);
    await detector?.stop();
    expect(movies()).toEqual([]);
    expect(logs.some((l) => l.msg === 'movie abandoned: detector stopped')).toBe(true);
  });
});
