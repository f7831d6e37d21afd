// The web desk in Chromium for bench/web.py, one command a line on stdin, one JSON answer a line on
// stdout. Chromium is tests/web/browser.mjs's: it trusts the hub's CA (given), fake media devices.
//
//   node bench/web_page.mjs '{"caFile": ".../ca-cert.pem"}'   -> {"ready": true}
//   {"op": "load", "url": ".../desk/", "credential": "...", "identity": "anna_phone", "fresh": true}
//       -> {"ms": <goto to the status showing "connected">, "marks": {...}}; fresh: in a new
//          context (nothing cached, no service worker), else a reload of the page open now
//   {"op": "ringing", "ms": 10000}  -> {"at": <epoch ms the ringing view showed>}, then re-armed
//   {"op": "idle", "ms": 10000}     -> {} once the ringing view is gone
//   {"op": "stop"}
//
// Times are the page's own (performance.timeOrigin + performance.now(), the system's clock), so
// that the bench compares them with its own clock's.

import readline from 'node:readline';
import { launch } from '../tests/web/browser.mjs';

const CONNECTED = '#status[data-status="connected"]';
const RINGING = '#view-ringing';
// Records, from inside the page, when its status first shows "connected" and when the ringing
// view shows: a MutationObserver sees a change in the task that made it, where polling from
// outside adds its own period (Playwright's waits poll every animation frame, or slower). A
// function, not a string: the desk's CSP forbids eval.
function recordMoments({ connected, ringing }) {
  const now = () => performance.timeOrigin + performance.now();
  window.__connectedAt = null;
  window.__ringingAt = null;
  document.addEventListener('DOMContentLoaded', () => {
    new MutationObserver(() => {
      if (window.__connectedAt === null && document.querySelector(connected)) window.__connectedAt = now();
      const view = document.querySelector(ringing);
      if (window.__ringingAt === null && view && !view.hidden && view.getClientRects().length > 0) {
        window.__ringingAt = now();
      }
    }).observe(document.body, { subtree: true, childList: true, attributes: true });
  });
}

// Where a cold load's time went, in ms from the navigation's start (the page's own timings).
const MARKS = () => {
  const [navigation] = performance.getEntriesByType('navigation');
  const token = performance.getEntriesByType('resource').find((entry) => entry.name.includes('/desk/api/token'));
  return {
    html: navigation.responseEnd,
    scriptsRun: navigation.domContentLoadedEventEnd,
    tokenAsked: token ? token.startTime : null,
    tokenGot: token ? token.responseEnd : null,
    connected: window.__connectedAt - performance.timeOrigin,
  };
};

const options = JSON.parse(process.argv[2] || '{}');
const chromium = await launch({ caFile: options.caFile });
let context = null;
let page = null;

async function freshPage(credential, identity) {
  if (context) await context.close();
  context = await chromium.browser.newContext();
  await context.addInitScript(
    ([key, value, who]) => {
      localStorage.setItem('intercom.credential', value);
      localStorage.setItem('intercom.identity', who);
    },
    ['intercom.credential', credential, identity],
  );
  await context.addInitScript(recordMoments, { connected: CONNECTED, ringing: RINGING });
  page = await context.newPage();
  page.on('pageerror', (err) => process.stderr.write(`[page exception] ${err.message}\n`));
}

const ops = {
  async load({ url, credential, identity, fresh = true, ms = 10000 }) {
    if (fresh || !page) await freshPage(credential, identity);
    const started = performance.timeOrigin + performance.now(); // the system's clock, as the page's
    if (fresh) await page.goto(url);
    else await page.reload();
    await page.waitForFunction(() => window.__connectedAt !== null, null, { timeout: ms, polling: 50 });
    const connectedAt = await page.evaluate(() => window.__connectedAt);
    return { ms: connectedAt - started, marks: fresh ? await page.evaluate(MARKS) : null };
  },
  async ringing({ ms = 10000 }) {
    await page.waitForFunction(() => window.__ringingAt !== null, null, { timeout: ms, polling: 50 });
    const at = await page.evaluate(() => window.__ringingAt);
    await page.evaluate(() => {
      window.__ringingAt = null;
    });
    return { at };
  },
  async idle({ ms = 10000 }) {
    await page.waitForSelector(RINGING, { state: 'hidden', timeout: ms });
    return {};
  },
};

const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
say({ ready: true });
for await (const line of readline.createInterface({ input: process.stdin })) {
  const { op, ...args } = JSON.parse(line);
  if (op === 'stop') break;
  try {
    say({ ok: true, ...(await ops[op](args)) });
  } catch (error) {
    say({ ok: false, error: error.message.split('\n')[0] });
  }
}
if (context) await context.close();
await chromium.close();
