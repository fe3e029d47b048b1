/**
 * The instrument list: shared by the portal (dashboard), the relay (VNC target, bookings)
 * and the stream service (data roots). Admins keep it in one YAML file.
 */
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { z } from 'zod';
import { formatIssues } from './config';
import { ConfigError, errorMessage } from './errors';

export const INSTRUMENT_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

const booking = z.strictObject({
  /** A usermap person id. */
  person: z.string().min(1),
  start: z.iso.datetime({ offset: true }),
  end: z.iso.datetime({ offset: true }),
});

const instrument = z.strictObject({
  id: z.string().regex(INSTRUMENT_ID, 'lowercase letters, digits and dashes'),
  name: z.string().min(1),
  description: z.string().default(''),
  location: z.string().default(''),
  /** The control PC's VNC server; its password lives in a root-only file, never here. */
  vnc: z
    .strictObject({
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535),
      password_file: z.string().min(1),
    })
    .optional(),
  /** Where the detector writes this instrument's movies. */
  data_root: z.string().min(1).optional(),
  /** When true, people may connect only inside one of their bookings. */
  booking_required: z.boolean().default(false),
  bookings: z.array(booking).default([]),
});

export const instrumentsFileSchema = z
  .strictObject({
    version: z.literal(1),
    instruments: z.array(instrument),
  })
  .superRefine((doc, ctx) => {
    const seen = new Set<string>();
    doc.instruments.forEach((inst, i) => {
      if (seen.has(inst.id)) ctx.addIssue({ code: 'custom', path: ['instruments', i, 'id'], message: `duplicate instrument id ${inst.id}` });
      seen.add(inst.id);
      inst.bookings.forEach((b, j) => {
        if (Date.parse(b.end) <= Date.parse(b.start)) {
          ctx.addIssue({ code: 'custom', path: ['instruments', i, 'bookings', j], message: 'booking ends before it starts' });
        }
      });
    });
  });

export type InstrumentsFile = z.infer<typeof instrumentsFileSchema>;
export type Instrument = InstrumentsFile['instruments'][number];

export function parseInstruments(text: string, source: string): InstrumentsFile {
  let doc: unknown;
  try {
    doc = yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (err) {
    throw new ConfigError(source, [`not valid YAML: ${errorMessage(err)}`]);
  }
  const parsed = instrumentsFileSchema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(source, formatIssues(parsed.error));
  return parsed.data;
}

export function loadInstruments(file: string): InstrumentsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [errorMessage(err)]);
  }
  return parseInstruments(text, file);
}

/** The `instruments` section of cloudlet.yml: where the instrument list lives. */
export const instrumentsSection = z
  .strictObject({
    file: z.string().min(1).default('./config/instruments.example.yml'),
  })
  .prefault({});
