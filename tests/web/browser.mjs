// Debian Chromium for the web desk's tests, trusting exactly the test's CA.
//
// Never told to ignore certificate errors: Chromium on Linux trusts what the NSS database in
// $HOME/.pki/nssdb trusts, so each launch gets a temporary HOME whose database holds the test's
// CA as a trusted root (certutil, Debian libnss3-tools), as a resident's phone holds the hub's CA
// once installed. Never downloads a browser: it uses the system Chromium (apt-get install chromium).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { AUTOPLAY_ARG, BASE_ARGS, CHROMIUM, FAKE_MEDIA_ARGS } from '../chromium.mjs';

const CERTUTIL = process.env.CERTUTIL_PATH || 'certutil';

// A new HOME whose NSS database trusts `caFile` (PEM or DER; or an array of them) to identify web
// sites; without a CA, an empty database: Chromium then trusts only what it ships with, as a
// fresh phone does.
export function trustStore(caFile = null) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'intercom-chromium-home-'));
  const db = `sql:${path.join(home, '.pki', 'nssdb')}`;
  fs.mkdirSync(path.join(home, '.pki', 'nssdb'), { recursive: true, mode: 0o700 });
  execFileSync(CERTUTIL, ['-N', '-d', db, '--empty-password'], { stdio: 'pipe' });
  [caFile].flat().filter(Boolean).forEach((file, index) => {
    // "C,,": a CA trusted to issue server certificates, and nothing else (no mail, no code signing)
    const nickname = `intercom test CA ${index}`;
    execFileSync(CERTUTIL, ['-A', '-d', db, '-n', nickname, '-t', 'C,,', '-i', file], { stdio: 'pipe' });
  });
  return home;
}

// Launch Chromium trusting `caFile` and open a context (a fresh profile, or `userDataDir`'s,
// which keeps service workers and storage across launches). Options:
//   caFile       the CA to trust (the `web_hub` fixture's `ca_file`), or an array of CAs; null:
//                trust none of ours
//   autoplay     sound without a tap (default true); false: the browser's own policy, to test the
//                page's "tap to enable sound"
//   userDataDir  a persistent profile directory (a PWA test), else a throw-away one
//   viewport     e.g. {width: 390, height: 844} for a phone; deviceScaleFactor, isMobile, hasTouch too
//   args         more Chromium flags
//   debug        the pages' console on stderr (errors always are)
// Returns {browser, context, newPage, close}: `newPage()` opens a page with its console wired to
// stderr; `close()` ends Chromium and removes the temporary HOME.
export async function launch({
  caFile = null,
  autoplay = true,
  userDataDir = null,
  viewport = null,
  deviceScaleFactor,
  isMobile,
  hasTouch,
  args = [],
  debug = false,
} = {}) {
  const home = trustStore(caFile);
  const options = {
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_ARGS, ...FAKE_MEDIA_ARGS, ...(autoplay ? [AUTOPLAY_ARG] : []), ...args],
    env: { ...process.env, HOME: home },
  };
  const contextOptions = { viewport: viewport || undefined, deviceScaleFactor, isMobile, hasTouch };
  let browser = null;
  let context;
  try {
    if (userDataDir) {
      context = await chromium.launchPersistentContext(userDataDir, { ...options, ...contextOptions });
    } else {
      browser = await chromium.launch(options);
      context = await browser.newContext(contextOptions);
    }
  } catch (error) {
    fs.rmSync(home, { recursive: true, force: true });
    throw error;
  }
  const newPage = async () => {
    const page = await context.newPage();
    page.on('console', (msg) => {
      if (debug || msg.type() === 'error') process.stderr.write(`[page ${msg.type()}] ${msg.text()}\n`);
    });
    page.on('pageerror', (err) => process.stderr.write(`[page exception] ${err.message}\n`));
    return page;
  };
  const close = async () => {
    await context.close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    fs.rmSync(home, { recursive: true, force: true });
  };
  return { browser, context, newPage, close };
}
