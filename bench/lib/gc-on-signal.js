// Preloaded into the relay by the bench only (node --expose-gc -r): SIGUSR2 runs a full GC, so
// memory per connection is measured on live objects, not on whenever V8 last collected.
'use strict';
process.on('SIGUSR2', () => global.gc?.());
