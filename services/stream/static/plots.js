// Time series of each judged metric against acquisition time, coloured by verdict, with the
// thresholds drawn as lines and the rejected side shaded; beside each, its histogram.
import uPlot from '../vendor/uPlot.esm.js';
import { el, num } from './format.js';

export const PLOTTED = [
  { key: 'defocus_um', label: 'Defocus', unit: 'µm', decimals: 2 },
  { key: 'ctfFitResolution_A', label: 'CTF fit resolution', unit: 'Å', decimals: 1 },
  { key: 'astigmatism_A', label: 'Astigmatism', unit: 'Å', decimals: 0 },
  { key: 'totalMotion_px', label: 'Total motion', unit: 'px', decimals: 1 },
  { key: 'iceRatio', label: 'Ice ring power', unit: '', decimals: 2 },
  { key: 'particles', label: 'Particles', unit: '', decimals: 0 },
];

const COLOURS = { accepted: '#2a62d6', rejected: '#d33a3a', pending: '#9aa3b2' };
const BINS = 32;
const AXIS = { stroke: '#5b6474', grid: { stroke: '#e6e9ef', width: 1 }, ticks: { stroke: '#d5dae3', width: 1, size: 4 }, font: '11px system-ui, sans-serif' };

/** Lines at the bounds, and a pink wash over what they reject, along the axis the metric is on. */
function thresholdHook(getBound, axis) {
  return (u) => {
    const bound = getBound();
    if (!bound) return;
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    const scale = axis === 'y' ? 'y' : 'x';
    const pos = (v) => u.valToPos(v, scale, true);
    const shade = (a, b) => {
      ctx.fillStyle = 'rgba(211, 58, 58, 0.07)';
      if (axis === 'y') ctx.fillRect(left, Math.min(a, b), width, Math.abs(b - a));
      else ctx.fillRect(Math.min(a, b), top, Math.abs(b - a), height);
    };
    const line = (p) => {
      ctx.strokeStyle = '#d33a3a';
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      if (axis === 'y') {
        ctx.moveTo(left, p);
        ctx.lineTo(left + width, p);
      } else {
        ctx.moveTo(p, top);
        ctx.lineTo(p, top + height);
      }
      ctx.stroke();
    };
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    if (bound.min !== undefined) {
      const p = pos(bound.min);
      shade(p, axis === 'y' ? top + height : left);
      line(p);
    }
    if (bound.max !== undefined) {
      const p = pos(bound.max);
      shade(p, axis === 'y' ? top : left + width);
      line(p);
    }
    ctx.restore();
  };
}

/** A scale's range that also shows a threshold lying a little outside the data. */
function rangeWithBounds(getBound) {
  return (_u, min, max) => {
    if (min === null || max === null) return [0, 1];
    let lo = min;
    let hi = max;
    const span = Math.max(hi - lo, Math.abs(hi) * 0.1, 1e-9);
    const b = getBound();
    for (const v of [b?.min, b?.max]) {
      if (v !== undefined && v >= lo - span && v <= hi + span) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    const pad = (hi - lo || Math.abs(hi) || 1) * 0.06;
    return [lo - pad, hi + pad];
  };
}

function scatterSeries(label, colour) {
  return { label, stroke: colour, fill: colour, paths: () => null, points: { show: true, size: 4, width: 1, stroke: colour, fill: colour } };
}

export class Plots {
  /** @param {HTMLElement} root @param {() => object} getThresholds */
  constructor(root, getThresholds) {
    this.root = root;
    this.getThresholds = getThresholds;
    this.panels = PLOTTED.map((m) => this.panel(m));
    new ResizeObserver(() => this.resize()).observe(root);
  }

  panel(metric) {
    const box = el('div', 'plot');
    box.dataset.metric = metric.key;
    const title = el('div', 'plot-title');
    const latest = el('span', 'latest');
    title.append(el('span', 'label', `${metric.label}${metric.unit ? ` (${metric.unit})` : ''}`), latest);
    const series = el('div', 'series');
    const hist = el('div', 'hist');
    const body = el('div', 'plot-body');
    body.append(series, hist);
    box.append(title, body);
    this.root.append(box);
    const getBound = () => this.getThresholds()[metric.key];
    const size = this.sizes(box);
    const ts = new uPlot(
      {
        ...size.series,
        legend: { show: false },
        cursor: { sync: { key: 'session' }, points: { size: 6 } },
        scales: { x: { time: true }, y: { range: rangeWithBounds(getBound) } },
        axes: [{ ...AXIS, size: 26 }, { ...AXIS, size: 42, values: (_u, vals) => vals.map((v) => num(v, metric.decimals > 0 && Math.abs(v) < 10 ? Math.min(metric.decimals, 2) : 0)) }],
        series: [{}, scatterSeries('accepted', COLOURS.accepted), scatterSeries('rejected', COLOURS.rejected), scatterSeries('pending', COLOURS.pending)],
        hooks: { draw: [thresholdHook(getBound, 'y')] },
      },
      [[], [], [], []],
      series,
    );
    const bars = uPlot.paths.bars({ size: [0.92, Infinity], gap: 0 });
    const hs = new uPlot(
      {
        ...size.hist,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false, range: rangeWithBounds(getBound) }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.08] } },
        axes: [{ ...AXIS, size: 26, values: (_u, vals) => vals.map((v) => num(v, metric.decimals > 0 && Math.abs(v) < 10 ? 1 : 0)) }, { ...AXIS, size: 34, values: (_u, vals) => vals.map(count) }],
        series: [{}, { label: 'all', fill: 'rgba(42, 98, 214, 0.55)', stroke: 'rgba(42, 98, 214, 0.9)', width: 0, paths: bars, points: { show: false } }, { label: 'rejected', fill: 'rgba(211, 58, 58, 0.7)', stroke: 'rgba(211, 58, 58, 0.9)', width: 0, paths: bars, points: { show: false } }],
        hooks: { draw: [thresholdHook(getBound, 'x')] },
      },
      [[], [], []],
      hist,
    );
    return { metric, box, latest, ts, hs };
  }

  sizes(box) {
    const w = Math.max(240, box.clientWidth || 600);
    const histW = Math.round(Math.min(260, w * 0.3));
    return { series: { width: w - histW - 6, height: 150 }, hist: { width: histW, height: 150 } };
  }

  resize() {
    for (const p of this.panels) {
      const s = this.sizes(p.box);
      p.ts.setSize(s.series);
      p.hs.setSize(s.hist);
    }
  }

  /** @param {object[]} rows sorted by acquisition time */
  update(rows) {
    const n = rows.length;
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = rows[i].acquired / 1000;
    for (const p of this.panels) {
      const key = p.metric.key;
      const acc = new Array(n).fill(null);
      const rej = new Array(n).fill(null);
      const pen = new Array(n).fill(null);
      const values = [];
      const rejected = [];
      let last;
      for (let i = 0; i < n; i++) {
        const r = rows[i];
        const v = r[key];
        if (v === undefined) continue;
        last = v;
        values.push(v);
        if (r.verdict === 'accepted') acc[i] = v;
        else if (r.verdict === 'rejected') {
          rej[i] = v;
          rejected.push(v);
        } else if (r.verdict === 'pending') pen[i] = v;
      }
      p.latest.textContent = last === undefined ? '' : `latest ${num(last, p.metric.decimals)}`;
      const size = n > 3000 ? 2.5 : n > 500 ? 3 : 4.5;
      for (let k = 1; k <= 3; k++) p.ts.series[k].points.size = size;
      p.ts.setData([Array.from(x), acc, rej, pen]);
      p.hs.setData(histogram(values, rejected, this.getThresholds()[key]));
    }
  }

  /** Thresholds changed but no data yet: redraw the lines. */
  redraw() {
    for (const p of this.panels) {
      p.ts.redraw(false, true);
      p.hs.redraw(false, true);
    }
  }
}

function count(v) {
  return v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : String(v);
}

/** Counts per bin over the data's range (widened to a nearby threshold), all and rejected. */
function histogram(values, rejected, bound) {
  if (values.length === 0) return [[], [], []];
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi - lo || Math.abs(hi) || 1;
  for (const v of [bound?.min, bound?.max]) {
    if (v !== undefined && v >= lo - span && v <= hi + span) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (hi === lo) hi = lo + 1;
  const width = (hi - lo) / BINS;
  const centres = Array.from({ length: BINS }, (_, i) => lo + (i + 0.5) * width);
  const count = (vs) => {
    const c = new Array(BINS).fill(0);
    for (const v of vs) c[Math.min(BINS - 1, Math.max(0, Math.floor((v - lo) / width)))]++;
    return c;
  };
  return [centres, count(values), count(rejected)];
}
