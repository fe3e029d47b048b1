// Every exposure in one table that stays fast at tens of thousands of rows: sorting and
// filtering happen on an array in memory, and only the rows in view (plus a few) exist in the
// DOM, a fixed pool of row elements moved and refilled as the table scrolls.
import { clock, el, num, progress } from './format.js';

export const ROW_HEIGHT = 22;
const OVERSCAN = 8;

const COLUMNS = [
  { key: 'id', label: '#', cls: 'n', text: (r) => String(r.id) },
  { key: 'name', label: 'Movie', cls: 'name', text: (r) => r.name },
  { key: 'acquired', label: 'Acquired', cls: 'n', text: (r) => clock(r.acquired) },
  { key: 'stepIndex', label: 'Progress', cls: 'prog', text: null },
  { key: 'verdict', label: 'Verdict', cls: 'verdict', text: (r) => (r.manual ? `${r.verdict} · hand` : r.verdict) },
  { key: 'defocus_um', label: 'Defocus µm', cls: 'n', text: (r) => num(r.defocus_um, 2) },
  { key: 'ctfFitResolution_A', label: 'CTF fit Å', cls: 'n', text: (r) => num(r.ctfFitResolution_A, 1) },
  { key: 'astigmatism_A', label: 'Astig. Å', cls: 'n', text: (r) => num(r.astigmatism_A, 0) },
  { key: 'totalMotion_px', label: 'Motion px', cls: 'n', text: (r) => num(r.totalMotion_px, 1) },
  { key: 'iceRatio', label: 'Ice', cls: 'n', text: (r) => num(r.iceRatio, 2) },
  { key: 'particles', label: 'Picks', cls: 'n', text: (r) => num(r.particles, 0) },
  { key: 'reasons', label: 'Reason', cls: 'reason', text: (r) => r.reasons.join('; ') },
  { key: null, label: 'Mark', cls: 'marks', text: null },
];

function compare(key, dir) {
  return (a, b) => {
    let va = a[key];
    let vb = b[key];
    if (key === 'reasons') {
      va = va.join('; ');
      vb = vb.join('; ');
    }
    // Rows without the value sort last whichever way, so a sort by CTF shows real numbers first.
    if (va === undefined || va === null) return vb === undefined || vb === null ? a.id - b.id : 1;
    if (vb === undefined || vb === null) return -1;
    const c = typeof va === 'string' ? va.localeCompare(vb) : va - vb;
    return (c || a.id - b.id) * dir;
  };
}

export class VirtualTable {
  /** @param {HTMLElement} root @param {(id: number, manual: string|null) => void} onMark @param {(shown: number, total: number) => void} onCount */
  constructor(root, onMark, onCount) {
    this.root = root;
    this.onCount = onCount;
    this.rows = [];
    this.view = [];
    this.steps = [];
    this.sort = { key: 'id', dir: -1 };
    this.filter = { text: '', verdict: '' };
    this.pool = [];
    this.head = el('div', 'vt-head');
    this.head.setAttribute('role', 'row');
    for (const c of COLUMNS) {
      const h = el('div', `c ${c.cls}`, c.label);
      h.setAttribute('role', 'columnheader');
      if (c.key) {
        h.dataset.sort = c.key;
        h.tabIndex = 0;
      }
      this.head.append(h);
    }
    this.scroller = el('div', 'vt-scroll');
    this.spacer = el('div', 'vt-spacer');
    this.body = el('div', 'vt-body');
    this.scroller.append(this.spacer, this.body);
    root.append(this.head, this.scroller);
    this.head.addEventListener('click', (ev) => this.sortBy(ev.target.closest('[data-sort]')?.dataset.sort));
    this.head.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') this.sortBy(ev.target.closest('[data-sort]')?.dataset.sort);
    });
    this.scroller.addEventListener('scroll', () => this.paint(), { passive: true });
    this.body.addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-mark]');
      if (!button) return;
      const row = this.view[Number(button.closest('[data-index]').dataset.index)];
      if (row) onMark(row.id, row.manual === button.dataset.mark ? null : button.dataset.mark);
    });
    new ResizeObserver(() => this.paint()).observe(this.scroller);
    this.showSort();
  }

  sortBy(key) {
    if (!key) return;
    this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: key === 'name' || key === 'verdict' || key === 'reasons' ? 1 : -1 };
    this.showSort();
    this.refresh();
  }

  showSort() {
    for (const h of this.head.querySelectorAll('[data-sort]')) h.dataset.dir = h.dataset.sort === this.sort.key ? (this.sort.dir > 0 ? 'asc' : 'desc') : '';
  }

  setFilter(filter) {
    this.filter = filter;
    this.refresh();
  }

  /** New rows (any change): filter and sort again, then repaint what is in view. */
  setRows(rows, steps) {
    this.rows = rows;
    this.steps = steps;
    this.refresh();
  }

  refresh() {
    const text = this.filter.text.trim().toLowerCase();
    const verdict = this.filter.verdict;
    this.view = this.rows.filter((r) => (!verdict || r.verdict === verdict) && (!text || r.name.toLowerCase().includes(text) || r.reasons.some((s) => s.toLowerCase().includes(text))));
    this.view.sort(compare(this.sort.key, this.sort.dir));
    this.spacer.style.height = `${this.view.length * ROW_HEIGHT}px`;
    this.onCount(this.view.length, this.rows.length);
    this.paint(true);
  }

  rowElement() {
    const row = el('div', 'vt-row');
    row.setAttribute('role', 'row');
    for (const c of COLUMNS) {
      const cell = el('div', `c ${c.cls}`);
      cell.setAttribute('role', 'cell');
      if (c.cls === 'prog') cell.append(el('div', 'bar'), el('span', 'step'));
      if (c.cls === 'marks') {
        for (const [mark, text] of [['accept', '✓'], ['reject', '✗']]) {
          const b = el('button', `mark ${mark}`, text);
          b.type = 'button';
          b.dataset.mark = mark;
          b.title = mark === 'accept' ? 'Accept by hand' : 'Reject by hand';
          cell.append(b);
        }
      }
      row.append(cell);
    }
    return row;
  }

  paint(force = false) {
    const height = this.scroller.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const count = Math.min(this.view.length - first, Math.ceil(height / ROW_HEIGHT) + 2 * OVERSCAN);
    if (!force && first === this.first && count === this.count) return;
    this.first = first;
    this.count = count;
    while (this.pool.length < count) this.body.append((this.pool[this.pool.length] = this.rowElement()));
    this.body.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    for (let i = 0; i < this.pool.length; i++) {
      const node = this.pool[i];
      const r = this.view[first + i];
      node.hidden = !r;
      if (r) this.fill(node, r, first + i);
    }
  }

  fill(node, r, index) {
    node.dataset.index = String(index);
    node.dataset.verdict = r.verdict;
    node.classList.toggle('odd', index % 2 === 1);
    const cells = node.children;
    COLUMNS.forEach((c, i) => {
      const cell = cells[i];
      if (c.text) {
        const t = c.text(r);
        if (cell.textContent !== t) cell.textContent = t;
        if (c.cls === 'reason' || c.cls === 'name') cell.title = t;
      } else if (c.cls === 'prog') {
        const p = progress(r, this.steps);
        cell.firstChild.style.width = `${Math.round(p.frac * 100)}%`;
        cell.lastChild.textContent = p.text;
        cell.dataset.state = r.state;
      } else if (c.cls === 'marks') {
        for (const b of cell.children) b.classList.toggle('on', b.dataset.mark === r.manual);
      }
    });
  }
}
