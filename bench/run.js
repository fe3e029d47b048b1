#!/usr/bin/env node
// `npm run bench -- <name>`: runs bench/<name>.js, which measures this project and its peer in
// the same run and prints one JSON object as its last line.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const name = process.argv[2];
const available = fs.readdirSync(__dirname).filter((f) => f.endsWith('.js') && f !== 'run.js').map((f) => f.slice(0, -3));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name>   (one of: ${available.join(', ')})`);
  process.exit(2);
}
require(path.join(__dirname, `${name}.js`))
  .run(process.argv.slice(3))
  .then((result) => console.log(JSON.stringify(result)))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
