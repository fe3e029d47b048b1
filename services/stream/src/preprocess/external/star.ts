/**
 * Just enough of the STAR format (as RELION writes it) to read a per-movie motion file: data
 * blocks that hold either a list of `_label value` pairs or one `loop_` table. A table row with
 * the wrong number of values is an error, because that is what a file cut off mid-write looks
 * like; we never guess which column a value belonged to.
 */
import { badOutput } from './output-files';

export interface StarBlock {
  name: string;
  /** Non-loop `_label value` pairs, label without the leading underscore. */
  pairs: Map<string, string>;
  /** Loop column labels (without underscore) in file order; empty when the block is a list. */
  columns: string[];
  rows: string[][];
}

/** Whitespace-separated values; a value may be quoted with ' or " to hold spaces. */
function tokenize(line: string, file: string, lineNo: number): string[] {
  const tokens: string[] = [];
  const re = /\s*(?:"([^"]*)"|'([^']*)'|(\S+))/y;
  let rest = line.trimEnd();
  while (rest.trim() !== '') {
    re.lastIndex = 0;
    const m = re.exec(rest);
    if (!m) throw badOutput(file, `line ${lineNo}: cannot split "${line.trim()}" into values`);
    tokens.push(m[1] ?? m[2] ?? m[3] ?? '');
    rest = rest.slice(re.lastIndex);
  }
  return tokens;
}

export function parseStar(text: string, file: string): StarBlock[] {
  const blocks: StarBlock[] = [];
  let block: StarBlock | undefined;
  let state: 'list' | 'labels' | 'rows' = 'list';
  text.split(/\r?\n/).forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('data_')) {
      block = { name: line.slice('data_'.length), pairs: new Map(), columns: [], rows: [] };
      blocks.push(block);
      state = 'list';
      return;
    }
    if (!block) throw badOutput(file, `line ${lineNo}: "${line}" before any data_ block`);
    if (line === 'loop_') {
      if (block.columns.length > 0) throw badOutput(file, `line ${lineNo}: a second loop_ in data_${block.name}`);
      state = 'labels';
      return;
    }
    if (line.startsWith('_') && state !== 'rows') {
      const [label = '', value] = tokenize(line, file, lineNo);
      if (state === 'labels') block.columns.push(label.slice(1));
      else if (value === undefined) throw badOutput(file, `line ${lineNo}: ${label} has no value`);
      else block.pairs.set(label.slice(1), value);
      return;
    }
    if (state === 'list') throw badOutput(file, `line ${lineNo}: "${line}" is neither a _label nor inside a loop_`);
    if (line.startsWith('_')) throw badOutput(file, `line ${lineNo}: label ${line.split(/\s/)[0] ?? ''} after the rows of data_${block.name}`);
    state = 'rows';
    const values = tokenize(line, file, lineNo);
    if (values.length !== block.columns.length) {
      throw badOutput(file, `line ${lineNo}: ${values.length} values in data_${block.name}, which has ${block.columns.length} columns`);
    }
    block.rows.push(values);
  });
  return blocks;
}
