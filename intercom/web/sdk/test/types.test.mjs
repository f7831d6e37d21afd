// index.d.ts describes the SDK: a page's use of it (types-usage.ts) type-checks, and a misuse
// does not (so the check can fail). One tsc run for both: it takes seconds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const FLAGS = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--lib', 'es2022,dom'];

test('a page using the SDK as documented type-checks; misuse does not', () => {
  const misuse = path.join(mkdtempSync(path.join(tmpdir(), 'sdk-types-')), 'misuse.ts');
  writeFileSync(
    misuse,
    `import { MessageBirdClient } from '${path.join(here, '..', 'index.js')}';\n` +
      `const client = new MessageBirdClient({ host: 'h' });\n` +
      `client.on('status', (status) => status === 'ringing');\n`,
  );
  let output = '';
  try {
    execFileSync(process.execPath, [tsc, ...FLAGS, path.join(here, 'types-usage.ts'), misuse], { encoding: 'utf8' });
  } catch (error) {
    output = error.stdout;
  }
  const errors = output.split('\n').filter((line) => /error TS/.test(line));
  assert.deepEqual(errors.filter((line) => line.includes('types-usage.ts')), []);
  assert.equal(errors.filter((line) => line.includes('misuse.ts')).length, 2, output);
  assert.match(output, /'refreshToken' is missing/);
  assert.match(output, /"ringing"/);
});
