// What the JsSIP browser harnesses share: the system Chromium and its flags, the JsSIP
// bundle, a page with JsSIP loaded, and JSON-lines output on stdout.
//
// Never downloads a browser: it uses the system Chromium (apt-get install chromium).

import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { AUTOPLAY_ARG, BASE_ARGS, CHROMIUM, FAKE_MEDIA_ARGS } from '../chromium.mjs';

// The server under test uses a self-signed certificate made by the test.
export const CHROMIUM_ARGS = [...BASE_ARGS, '--ignore-certificate-errors'];
// getUserMedia without a prompt, loopback ICE candidates, and WebAudio without a click.
export const MEDIA_ARGS = [...FAKE_MEDIA_ARGS, AUTOPLAY_ARG];
const PAGE_HTML = '<!doctype html><html><head><title>jssip</title></head><body></body></html>';
export const SHUTDOWN_MS = 3000; // upper bound for stopping the UA / closing the browser

export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

export function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms))]);
}

// The jssip npm package (3.13.x) ships only CommonJS sources in lib/, no dist/
// browser bundle, so build one in memory exactly like upstream's own
// `npm run build` does (esbuild, IIFE, global name `JsSIP`).
export async function jssipBundle() {
  const require = createRequire(import.meta.url);
  const entry = path.join(path.dirname(require.resolve('jssip/package.json')), 'lib/JsSIP.js');
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    minify: true,
    format: 'iife',
    globalName: 'JsSIP',
    platform: 'browser',
    target: ['es2015'],
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

// Serve the blank page from http://127.0.0.1:<port>/: getUserMedia needs a secure context,
// which about:blank is not and a loopback origin is, and Chromium's Local Network Access checks
// let a loopback page (but not one Playwright made up) open a WebSocket to a loopback server.
// The test names the port (`pagePort`), so that it can allow the page's origin on the hub.
async function servePage(port) {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html' });
    response.end(PAGE_HTML);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}

// Launch Chromium and open a blank page with JsSIP loaded and `window.__emit(obj)` wired to
// `onEvent`. With `userDataDir`, Chromium runs on that (new, empty) profile directory; without
// it, Playwright makes a temporary one. Returns {page, close}; `close()` ends it all.
export async function openJssipPage({ args = [], userDataDir = null, debug = false, pagePort = 0, onEvent }) {
  const bundle = await jssipBundle();
  const server = await servePage(pagePort);
  const launchArgs = [...CHROMIUM_ARGS, ...args];
  let browser;
  let page;
  if (userDataDir) {
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: launchArgs,
    });
    page = browser.pages()[0] || (await browser.newPage());
  } else {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: launchArgs });
    page = await browser.newPage();
  }
  page.on('console', (msg) => {
    if (debug || msg.type() === 'error') {
      process.stderr.write(`[page ${msg.type()}] ${msg.text()}\n`);
    }
  });
  page.on('pageerror', (err) => process.stderr.write(`[page exception] ${err.message}\n`));
  await page.exposeFunction('__emit', onEvent);
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.addScriptTag({ content: bundle });
  const close = async () => {
    await browser.close().catch(() => {});
    server.close();
  };
  return { page, close };
}
