// Bundles the browser side into dist/ (git-ignored, shipped in the wheel):
//   sdk/src/index.js -> dist/intercom-sdk.js   (ESM, JsSIP bundled in), sdk/index.d.ts beside it
//   desk/app.js      -> dist/desk/app.js       (ESM, the SDK bundled in), when the desk exists
//   every other file of desk/ is copied to dist/desk/ as it is (html, css, manifest, sw.js, ...).
// Run from anywhere: `node intercom/web/build.mjs`. Exits non-zero on any build error.

import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
const desk = path.join(here, 'desk');

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // Chromium, Safari and Firefox of the last years: what a phone that installs a PWA runs.
  target: ['es2020'],
  minify: true, // what ships in the wheel: no source map (node build.mjs is quick to run unminified by hand)
  logLevel: 'warning',
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const sdk = await esbuild.build({
  ...common,
  entryPoints: [path.join(here, 'sdk/src/index.js')],
  outfile: path.join(dist, 'intercom-sdk.js'),
  metafile: true,
});
await writeFile(path.join(dist, 'THIRD-PARTY-LICENSES.txt'), await licenses(sdk.metafile));
await cp(path.join(here, 'sdk/index.d.ts'), path.join(dist, 'intercom-sdk.d.ts')); // its types, beside it

if (existsSync(path.join(desk, 'app.js'))) {
  await esbuild.build({
    ...common,
    entryPoints: [path.join(desk, 'app.js')],
    outfile: path.join(dist, 'desk/app.js'),
  });
  // The desk's other files as they are; its JavaScript modules are in app.js's bundle already.
  for (const entry of await readdir(desk, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const source = path.join(entry.parentPath, entry.name);
    const relative = path.relative(desk, source);
    if (relative.endsWith('.js') && relative !== 'sw.js') continue;
    await mkdir(path.dirname(path.join(dist, 'desk', relative)), { recursive: true });
    await cp(source, path.join(dist, 'desk', relative));
  }
}

// The licence text of every npm package bundled in (JsSIP and its dependencies, all MIT): they
// ship with the bundle, as their licences ask.
async function licenses(metafile) {
  const packages = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) packages.add(match[1]);
  }
  const parts = [];
  for (const name of [...packages].sort()) {
    const folder = path.join(here, 'node_modules', name);
    const file = (await readdir(folder)).find((each) => /^licen[cs]e/i.test(each));
    const { version } = JSON.parse(await readFile(path.join(folder, 'package.json'), 'utf8'));
    parts.push(`${name} ${version}\n\n${file ? await readFile(path.join(folder, file), 'utf8') : '(no licence file)'}`);
  }
  return parts.join('\n' + '-'.repeat(72) + '\n\n');
}
