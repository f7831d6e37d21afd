// One Chromium (browser.mjs's launch: the test's CA trusted, fake media devices) driven by the
// test one command at a time: a JSON line on stdin, its answer as a JSON line on stdout. The test
// acts between commands (a door rings, a device is revoked) and asks the page what it shows.
//
//   node desk_driver.mjs '{"caFile": "...", "viewport": {"width": 390, "height": 844}}'
//   -> {"ready": true}
//   {"id": 1, "op": "goto", "url": "https://127.0.0.1:4433/desk/"}  -> {"id": 1, "ok": true, "result": null}
//
// Before any page script runs, probes are plugged in from outside the page (RECORDERS): every
// RTCPeerConnection it makes (window.__peerConnections: "farEndPitch" measures what the far end
// sends), every blob it makes a URL of (window.__blobs), every status it shows (window.__statuses()),
// every CSP violation (window.__cspViolations).

import readline from 'node:readline';
import { installSoundMeter } from '../chromium.mjs';
import { launch } from './browser.mjs';

const options = JSON.parse(process.argv[2] || '{}');
const browser = await launch(options);
let page = null;
const fulfilled = new Map();
// The page's status element's every change, recorded from outside the page (a MutationObserver).
const RECORDERS = `
  window.__peerConnections = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__peerConnections.push(this); }
  };
  // Each blob the page turns into a URL (a voicemail), to be read back: the CSP lets the page
  // play a blob URL but not fetch one.
  window.__blobs = new Map();
  const createObjectURL = URL.createObjectURL;
  URL.createObjectURL = (blob) => {
    const url = createObjectURL(blob);
    window.__blobs.set(url, blob);
    return url;
  };
  // What the page's Content-Security-Policy refused: the page must need nothing it forbids.
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) =>
    window.__cspViolations.push(event.effectiveDirective + ' ' + event.blockedURI),
  );
  // Each status the page showed, in order: a change's old value is kept, as two changes in one
  // task reach an observer as one call.
  const shown = [];
  window.__statuses = () => [...shown, document.getElementById('status')?.dataset.status];
  document.addEventListener('DOMContentLoaded', () => {
    const status = document.getElementById('status');
    if (!status) return;
    new MutationObserver((changes) => changes.forEach((change) => shown.push(change.oldValue))).observe(status, {
      attributes: true,
      attributeOldValue: true,
      attributeFilter: ['data-status'],
    });
  });
`;

async function openPage() {
  page = await browser.newPage();
  await page.addInitScript(RECORDERS);
  await page.addInitScript(installSoundMeter);
}

// The dominant frequency of what the page's newest call receives, once it is audible.
const FAR_END_PITCH = async (seconds) => {
  const pc = window.__peerConnections.at(-1);
  const tracks = pc.getReceivers().map((r) => r.track).filter((t) => t && t.kind === 'audio');
  const meter = window.__soundMeter(new MediaStream(tracks));
  const deadline = performance.now() + seconds * 1000;
  let audible = 0;
  try {
    while (performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const sound = meter.measure();
      audible = sound.rms > 0.01 ? audible + 1 : 0;
      if (audible >= 2) return sound; // the second audible window lies wholly within the sound
    }
    return null;
  } finally {
    meter.close();
  }
};

const ops = {
  async goto({ url }) {
    await page.goto(url);
  },
  async reopen() {
    await page.close();
    await openPage();
  },
  async click({ selector }) {
    await page.click(selector, { timeout: 10000 });
  },
  // Wait until `selector` matches a visible element (or, with state "hidden", none).
  async waitFor({ selector, state = 'visible', ms = 10000 }) {
    await page.waitForSelector(selector, { state, timeout: ms });
  },
  async text({ selector }) {
    return page.textContent(selector);
  },
  // `expression` is a function's source, called in the page with `arg`.
  async evaluate({ expression, arg = null }) {
    return page.evaluate(`(${expression})(${JSON.stringify(arg)})`);
  },
  async farEndPitch({ seconds = 5 }) {
    return page.evaluate(FAR_END_PITCH, seconds);
  },
  // Answer requests for `url` (a glob) with `status` and JSON `body` from now on: a hub that
  // misbehaves in one precise way, the rest of it real.
  // "fulfilled" says how many requests were answered so.
  async fulfil({ url, status = 200, body }) {
    fulfilled.set(url, 0);
    await page.route(url, (route) => {
      fulfilled.set(url, fulfilled.get(url) + 1);
      return route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
    });
  },
  async fulfilled({ url }) {
    return fulfilled.get(url);
  },
  // Until `expression` (a function's source) returns something truthy in the page.
  async waitUntil({ expression, ms = 10000 }) {
    // A function, not a string: Playwright would eval a string inside the page, which its CSP forbids.
    const predicate = new Function(`return (${expression})();`);
    await page.waitForFunction(predicate, null, { timeout: ms, polling: 100 });
  },
  async screenshot({ path }) {
    await page.screenshot({ path });
  },
};

await openPage();
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const { id, op, ...args } = JSON.parse(line);
  let answer;
  try {
    answer = { id, ok: true, result: (await ops[op](args)) ?? null };
  } catch (error) {
    answer = { id, ok: false, error: String(error.message || error) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await browser.close();
