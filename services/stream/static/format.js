// Formatting shared by the strip, the table and the plots.

/** A number for a cell: fixed decimals, or an en dash when the step has not reported it. */
export function num(v, decimals = 1) {
  return v === undefined || v === null || !Number.isFinite(v) ? '–' : v.toFixed(decimals);
}

export function clock(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}`;
}

export function bytes(b) {
  if (b === undefined || b === null) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) {
    b /= 1000;
    i++;
  }
  return `${b.toFixed(b >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/** How far along the pipeline a row is, 0..1, and the words for it. */
export function progress(row, steps) {
  const total = steps.length || 1;
  if (row.state === 'done') return { frac: 1, text: 'done' };
  if (row.state === 'failed' || row.state === 'rejected') return { frac: Math.min(1, row.stepIndex / total), text: row.state };
  if (row.state === 'running' && row.step) return { frac: row.stepIndex / total, text: `${row.step} ${row.stepIndex + 1}/${total}` };
  return { frac: row.stepIndex / total, text: row.stepIndex > 0 ? `queued ${row.stepIndex}/${total}` : 'queued' };
}

/** Creates an element with a class and optional text, so modules build DOM without innerHTML. */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}
