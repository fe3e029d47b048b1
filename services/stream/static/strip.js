// The strip of the newest exposures: what a microscopist glances at after each movie.
// Cards are kept per exposure and updated in place, so a step finishing elsewhere does not
// reload every thumbnail.
import { clock, el, num, progress } from './format.js';

/** The part of a detector's file name that tells exposures apart: the end, without the suffixes every one shares. */
function shortName(name) {
  const stem = name.replace(/(_fractions|_EER|_Fractions)?\.(tiff?|mrc|mrcs|eer)$/i, '');
  return stem.length > 17 ? `…${stem.slice(-16)}` : stem;
}

const VERDICT_TEXT = { accepted: 'accepted', rejected: 'rejected', pending: 'pending', failed: 'failed' };

export class Strip {
  /** @param {HTMLElement} root @param {(id: number, manual: string|null) => void} onMark */
  constructor(root, onMark, size = 12) {
    this.root = root;
    this.size = size;
    this.cards = new Map();
    root.addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-mark]');
      if (!button) return;
      const card = button.closest('[data-id]');
      const id = Number(card.dataset.id);
      const mark = button.dataset.mark;
      // A second click on the mark already set takes it back.
      onMark(id, card.dataset.manual === mark ? null : mark);
    });
  }

  render(rows, steps) {
    if (rows.length === 0) {
      this.root.replaceChildren(el('p', 'muted empty', 'Waiting for the first movie…'));
      this.cards.clear();
      return;
    }
    const keep = new Map();
    const nodes = rows.map((row) => {
      const card = this.cards.get(row.id) ?? this.create(row);
      this.update(card, row, steps);
      keep.set(row.id, card);
      return card;
    });
    this.cards = keep;
    // Only touch the DOM order when it changed: moving a node restarts its image decode in some browsers.
    const current = Array.from(this.root.children);
    if (current.length !== nodes.length || nodes.some((n, i) => current[i] !== n)) this.root.replaceChildren(...nodes);
  }

  create(row) {
    const card = el('article', 'card');
    card.dataset.id = String(row.id);
    const imgs = el('div', 'imgs');
    const sum = el('img', 'sum');
    sum.alt = 'aligned sum';
    sum.loading = 'lazy';
    const ctf = el('img', 'ctf');
    ctf.alt = 'power spectrum with CTF fit';
    ctf.loading = 'lazy';
    imgs.append(sum, ctf);
    const head = el('div', 'head');
    head.append(el('span', 'name'));
    const stats = el('div', 'stats');
    stats.append(el('span', 'when'), el('span', 'numbers'));
    const bar = el('div', 'bar');
    bar.append(el('div', 'fill'), el('span', 'step'));
    const foot = el('div', 'foot');
    const verdict = el('span', 'verdict');
    const marks = el('span', 'marks');
    const accept = el('button', 'mark accept', '✓');
    accept.type = 'button';
    accept.dataset.mark = 'accept';
    accept.title = 'Accept by hand';
    const reject = el('button', 'mark reject', '✗');
    reject.type = 'button';
    reject.dataset.mark = 'reject';
    reject.title = 'Reject by hand';
    marks.append(accept, reject);
    foot.append(verdict, marks);
    card.append(imgs, head, stats, bar, el('div', 'reason'), foot);
    return card;
  }

  update(card, row, steps) {
    card.dataset.verdict = row.verdict;
    card.dataset.manual = row.manual ?? '';
    const version = `${row.state}-${row.stepIndex}-${row.done ?? ''}`;
    for (const [cls, name] of [['sum', 'sum.png'], ['ctf', 'ctf.png']]) {
      const img = card.querySelector(`img.${cls}`);
      const has = row.thumbs.includes(name);
      img.hidden = !has;
      // The version in the query makes a reprocessed exposure's new image replace the old one.
      const src = has ? `files/${row.id}/${name}?v=${encodeURIComponent(version)}` : '';
      if (has && img.dataset.src !== src) {
        img.dataset.src = src;
        img.src = src;
      }
    }
    card.querySelector('.name').textContent = shortName(row.name);
    card.querySelector('.name').title = row.name;
    card.querySelector('.when').textContent = `${clock(row.acquired)} · ${row.particles ?? '–'} picks`;
    card.querySelector('.numbers').textContent = `${num(row.defocus_um, 2)}µm / ${num(row.ctfFitResolution_A, 1)}Å / ${num(row.totalMotion_px, 0)}px`;
    card.querySelector('.numbers').title = 'defocus · CTF fit resolution · total motion';
    const p = progress(row, steps);
    card.querySelector('.fill').style.width = `${Math.round(p.frac * 100)}%`;
    card.querySelector('.step').textContent = p.text;
    card.querySelector('.reason').textContent = row.reasons.join('; ');
    card.querySelector('.verdict').textContent = VERDICT_TEXT[row.verdict] ?? row.verdict;
    for (const b of card.querySelectorAll('button[data-mark]')) b.classList.toggle('on', b.dataset.mark === row.manual);
  }
}
