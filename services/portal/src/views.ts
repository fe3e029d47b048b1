/** Server-rendered pages (ejs). Templates are compiled once at start; values are escaped by `<%=`. */
import fs from 'node:fs';
import path from 'node:path';
import ejs from 'ejs';

export interface Views {
  render(name: string, data: Record<string, unknown>): string;
}

export const VIEWS_DIR = path.join(__dirname, '..', 'views');

export function createViews(siteName: string, dir = VIEWS_DIR): Views {
  const compiled = new Map<string, ejs.TemplateFunction>();
  for (const file of fs.readdirSync(dir)) {
    if (!file.endsWith('.ejs')) continue;
    const filename = path.join(dir, file);
    compiled.set(file.slice(0, -4), ejs.compile(fs.readFileSync(filename, 'utf8'), { filename, async: false }));
  }
  return {
    render(name, data) {
      const template = compiled.get(name);
      if (!template) throw new Error(`no view ${name}`);
      return template({ siteName, csrf: undefined, ...data });
    },
  };
}
