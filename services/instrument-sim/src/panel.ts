/**
 * The control panel the VNC clients see. The layout is a pure function of the screen size, so
 * tests (and anyone scripting clicks) can compute where every button is. Rendering is
 * incremental: each widget remembers what it last drew and is redrawn, and reported dirty, only
 * when that changes.
 */
import { drawText, drawTextCentred, textWidth } from './font';
import { Framebuffer, type Rgb } from './framebuffer';
import { renderLiveView } from './live-view';
import { containsPoint, type Rect, rect } from './region';
import type { MicroscopeSnapshot } from './state';

export const MIN_WIDTH = 800;
export const MIN_HEIGHT = 600;

export const QUANTITIES = ['stage_x', 'stage_y', 'magnification', 'defocus', 'dose_rate'] as const;
export type Quantity = (typeof QUANTITIES)[number];
export type ControlId = `${Quantity}.minus` | `${Quantity}.plus` | 'valves' | 'acquire';

export interface Control {
  readonly id: ControlId;
  readonly rect: Rect;
}

export interface Readout {
  readonly label: Rect;
  readonly minus: Rect;
  readonly value: Rect;
  readonly plus: Rect;
}

export interface PanelLayout {
  readonly width: number;
  readonly height: number;
  readonly title: Rect;
  readonly readouts: Readonly<Record<Quantity, Readout>>;
  readonly valvesLabel: Rect;
  readonly valves: Rect;
  readonly acquire: Rect;
  readonly exposures: Rect;
  readonly liveLabel: Rect;
  readonly liveView: Rect;
  readonly status: Rect;
  /** The keyboard legend, where the screen is tall enough for it. */
  readonly keys: Rect | undefined;
  /** Every clickable control, in drawing order. */
  readonly controls: readonly Control[];
}

export const COLOURS = Object.freeze({
  background: 0x1b2230,
  titleBar: 0x0f4c81,
  titleText: 0xffffff,
  label: 0x9fb3c8,
  valueBox: 0x0d1117,
  valueText: 0xe8eef5,
  button: 0x3a4a60,
  buttonText: 0xffffff,
  valvesOpen: 0x1e9e4a,
  valvesClosed: 0xc62828,
  acquire: 0x1565c0,
  stop: 0xef6c00,
  frame: 0x5c6b80,
  statusBar: 0x10151f,
  statusText: 0xf5d76e,
  crosshair: 0xffd54f,
} satisfies Record<string, Rgb>);

const LABELS: Record<Quantity, string> = {
  stage_x: 'STAGE X',
  stage_y: 'STAGE Y',
  magnification: 'MAGNIFICATION',
  defocus: 'DEFOCUS',
  dose_rate: 'DOSE RATE',
};

const KEY_LEGEND: readonly (readonly [string, string])[] = [
  ['Arrows', 'move the stage'],
  ['PgUp/PgDn', 'defocus'],
  ['+ / -', 'magnification'],
  ['V', 'column valves'],
  ['A, Space', 'acquire / stop'],
];
const LINE = 20;

const MARGIN = 24;
const COLUMN_WIDTH = 364;
const BUTTON = 44;
const GAP = 8;

export function layoutPanel(width: number, height: number): PanelLayout {
  if (width < MIN_WIDTH || height < MIN_HEIGHT) throw new RangeError(`the panel needs at least ${MIN_WIDTH}x${MIN_HEIGHT}, not ${width}x${height}`);
  const readouts = {} as Record<Quantity, Readout>;
  QUANTITIES.forEach((q, i) => {
    const y = 56 + i * 62;
    readouts[q] = {
      label: rect(MARGIN, y, COLUMN_WIDTH, 14),
      minus: rect(MARGIN, y + 18, BUTTON, 36),
      value: rect(MARGIN + BUTTON + GAP, y + 18, COLUMN_WIDTH - 2 * (BUTTON + GAP), 36),
      plus: rect(MARGIN + COLUMN_WIDTH - BUTTON, y + 18, BUTTON, 36),
    };
  });
  const liveX = MARGIN + COLUMN_WIDTH + 32;
  const side = Math.min(width - liveX - MARGIN, height - 32 - 16 - 74, 512);
  const valves = rect(MARGIN, 390, COLUMN_WIDTH, 42);
  const acquire = rect(MARGIN, 448, COLUMN_WIDTH, 64);
  const controls: Control[] = QUANTITIES.flatMap((q) => [
    { id: `${q}.minus` as const, rect: readouts[q].minus },
    { id: `${q}.plus` as const, rect: readouts[q].plus },
  ]);
  controls.push({ id: 'valves', rect: valves }, { id: 'acquire', rect: acquire });
  const keysTop = 570;
  const keysHeight = LINE * (KEY_LEGEND.length + 1);
  return Object.freeze({
    width,
    height,
    title: rect(0, 0, width, 40),
    readouts: Object.freeze(readouts),
    valvesLabel: rect(MARGIN, 372, COLUMN_WIDTH, 14),
    valves,
    acquire,
    exposures: rect(MARGIN, 526, COLUMN_WIDTH, 20),
    liveLabel: rect(liveX, 56, side, 14),
    liveView: rect(liveX, 74, side, side),
    status: rect(0, height - 32, width, 32),
    keys: keysTop + keysHeight <= height - 40 ? rect(MARGIN, keysTop, COLUMN_WIDTH, keysHeight) : undefined,
    controls: Object.freeze(controls),
  });
}

/** The control under (x, y), if any. */
export function controlAt(layout: PanelLayout, x: number, y: number): ControlId | undefined {
  return layout.controls.find((c) => containsPoint(c.rect, x, y))?.id;
}

/** The text a readout shows for `s`. */
export function readoutText(q: Quantity, s: MicroscopeSnapshot): string {
  switch (q) {
    case 'stage_x':
      return `${s.stage_x_um.toFixed(1)} \u00b5m`;
    case 'stage_y':
      return `${s.stage_y_um.toFixed(1)} \u00b5m`;
    case 'magnification':
      return `${s.magnification}x`;
    case 'defocus':
      return `${s.defocus_um.toFixed(1)} \u00b5m`;
    case 'dose_rate':
      return `${s.dose_rate_e_per_px_s} e/px/s`;
  }
}

interface Widget {
  key: string;
  area: Rect;
  signature(s: MicroscopeSnapshot): string;
  draw(fb: Framebuffer, s: MicroscopeSnapshot): void;
}

export interface PanelOptions {
  width: number;
  height: number;
  title: string;
}

export class ControlPanel {
  readonly framebuffer: Framebuffer;
  readonly layout: PanelLayout;
  private readonly widgets: readonly Widget[];
  private readonly shown = new Map<string, string>();
  private drawn = false;

  constructor(private readonly options: PanelOptions) {
    this.layout = layoutPanel(options.width, options.height);
    this.framebuffer = new Framebuffer(options.width, options.height);
    this.widgets = widgetsFor(this.layout);
  }

  controlAt(x: number, y: number): ControlId | undefined {
    return controlAt(this.layout, x, y);
  }

  /** Brings the framebuffer up to date with `s` and returns the rectangles that changed. */
  render(s: MicroscopeSnapshot): Rect[] {
    const fb = this.framebuffer;
    const first = !this.drawn;
    if (first) {
      this.drawStatic();
      this.drawn = true;
    }
    const dirty: Rect[] = [];
    for (const w of this.widgets) {
      const signature = w.signature(s);
      if (this.shown.get(w.key) === signature) continue;
      w.draw(fb, s);
      this.shown.set(w.key, signature);
      dirty.push(w.area);
    }
    return first ? [fb.bounds] : dirty;
  }

  private drawStatic(): void {
    const fb = this.framebuffer;
    const l = this.layout;
    fb.fill(fb.bounds, COLOURS.background);
    fb.fill(l.title, COLOURS.titleBar);
    drawText(fb, fitText(this.options.title, l.width - 2 * MARGIN, 2), MARGIN, 13, 2, COLOURS.titleText);
    for (const q of QUANTITIES) {
      const r = l.readouts[q];
      drawText(fb, LABELS[q], r.label.x, r.label.y, 2, COLOURS.label);
      drawButton(fb, r.minus, '-');
      drawButton(fb, r.plus, '+');
    }
    drawText(fb, 'COLUMN VALVES', l.valvesLabel.x, l.valvesLabel.y, 2, COLOURS.label);
    drawText(fb, 'LIVE VIEW', l.liveLabel.x, l.liveLabel.y, 2, COLOURS.label);
    fb.outline(rect(l.liveView.x - 2, l.liveView.y - 2, l.liveView.width + 4, l.liveView.height + 4), COLOURS.frame, 2);
    if (l.keys) drawKeyLegend(fb, l.keys);
  }
}

function drawKeyLegend(fb: Framebuffer, box: Rect): void {
  drawText(fb, 'KEYS', box.x, box.y, 2, COLOURS.label);
  KEY_LEGEND.forEach(([keys, what], i) => {
    const y = box.y + LINE * (i + 1);
    drawText(fb, keys, box.x, y, 2, COLOURS.valueText);
    drawText(fb, what, box.x + 132, y, 2, COLOURS.label);
  });
}

function widgetsFor(l: PanelLayout): Widget[] {
  const readouts: Widget[] = QUANTITIES.map((q) => ({
    key: q,
    area: l.readouts[q].value,
    signature: (s) => readoutText(q, s),
    draw: (fb, s) => {
      const box = l.readouts[q].value;
      fb.fill(box, COLOURS.valueBox);
      fb.outline(box, COLOURS.frame);
      drawTextCentred(fb, readoutText(q, s), box, 3, COLOURS.valueText);
    },
  }));
  return [
    ...readouts,
    {
      key: 'valves',
      area: l.valves,
      signature: (s) => String(s.column_valves_open),
      draw: (fb, s) => {
        fb.fill(l.valves, s.column_valves_open ? COLOURS.valvesOpen : COLOURS.valvesClosed);
        drawTextCentred(fb, s.column_valves_open ? 'OPEN' : 'CLOSED', l.valves, 3, COLOURS.buttonText);
      },
    },
    {
      key: 'acquire',
      area: l.acquire,
      signature: (s) => String(s.acquiring),
      draw: (fb, s) => {
        fb.fill(l.acquire, s.acquiring ? COLOURS.stop : COLOURS.acquire);
        drawTextCentred(fb, s.acquiring ? 'STOP' : 'ACQUIRE', l.acquire, 4, COLOURS.buttonText);
      },
    },
    {
      key: 'exposures',
      area: l.exposures,
      signature: (s) => String(s.exposures),
      draw: (fb, s) => {
        fb.fill(l.exposures, COLOURS.background);
        drawText(fb, `EXPOSURES: ${s.exposures}`, l.exposures.x, l.exposures.y + 3, 2, COLOURS.valueText);
      },
    },
    {
      key: 'live',
      area: l.liveView,
      signature: (s) => [s.stage_x_um, s.stage_y_um, s.magnification, s.defocus_um, s.dose_rate_e_per_px_s, s.column_valves_open].join(' '),
      draw: (fb, s) => drawLiveView(fb, l.liveView, s),
    },
    {
      key: 'status',
      area: l.status,
      signature: (s) => s.status,
      draw: (fb, s) => {
        fb.fill(l.status, COLOURS.statusBar);
        drawText(fb, fitText(s.status, l.width - 2 * 16, 2), 16, l.status.y + 9, 2, COLOURS.statusText);
      },
    },
  ];
}

function drawButton(fb: Framebuffer, box: Rect, text: string): void {
  fb.fill(box, COLOURS.button);
  drawTextCentred(fb, text, box, 3, COLOURS.buttonText);
}

function drawLiveView(fb: Framebuffer, box: Rect, s: MicroscopeSnapshot): void {
  renderLiveView(fb, box, s);
  const cx = box.x + Math.floor(box.width / 2);
  const cy = box.y + Math.floor(box.height / 2);
  fb.fill(rect(cx - 10, cy, 21, 1), COLOURS.crosshair);
  fb.fill(rect(cx, cy - 10, 1, 21), COLOURS.crosshair);
  if (!s.column_valves_open) drawTextCentred(fb, 'NO BEAM: COLUMN VALVES CLOSED', rect(box.x, box.y + box.height - 40, box.width, 30), 2, COLOURS.label);
}

/** Cuts `text` with an ellipsis-like ".." so it fits `width` pixels at `scale`. */
function fitText(text: string, width: number, scale: number): string {
  if (textWidth(text, scale) <= width) return text;
  let cut = [...text];
  while (cut.length > 0 && textWidth(`${cut.join('')}..`, scale) > width) cut = cut.slice(0, -1);
  return `${cut.join('')}..`;
}
