#!/usr/bin/env node
// Register a real JsSIP 3.x UA, running inside headless Debian Chromium, against
// a SIP-over-WebSocket server, and report what happened as JSON lines on stdout.
//
//   node jssip_register.mjs --url wss://127.0.0.1:PORT --host 127.0.0.1:PORT \
//       --token JWT [--timeout-ms 20000] [--debug]
//
// stdout: one JSON object per line:
//   {"event":"connected"}
//   {"event":"registered","expires":60}
//   {"event":"registrationFailed","status_code":403,"reason_phrase":"...","cause":"..."}
//   {"event":"disconnected"}
//   {"event":"timeout"}                       (exit 2)
//   {"event":"error","message":"..."}         (exit 3)
// Exit 0 once "registered" or "registrationFailed" has been printed.
// stderr: page console errors / exceptions (everything, with --debug).

import { parseArgs } from 'node:util';
import { emit, openJssipPage, SHUTDOWN_MS, withTimeout } from './harness.mjs';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    host: { type: 'string' },
    token: { type: 'string' },
    'timeout-ms': { type: 'string', default: '20000' },
    'page-port': { type: 'string', default: '0' },
    debug: { type: 'boolean', default: false },
  },
});

let close = null;
let page = null;
let finished = false;

// Stop the UA (lets it send an un-REGISTER / close the socket) and the browser,
// each bounded so a wedged page can't keep us alive; then exit.
async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  if (page) {
    await withTimeout(page.evaluate(() => window.__stopUA()).catch(() => {}), SHUTDOWN_MS);
  }
  if (close) {
    await withTimeout(close(), SHUTDOWN_MS);
  }
  process.exit(code);
}

// Events coming from the page. Once a terminal event has been printed, later
// registration events (e.g. JsSIP retrying after a 403) are swallowed.
function onPageEvent(ev) {
  if (finished && ev.event !== 'disconnected') return;
  emit(ev);
  if (ev.event === 'registered' || ev.event === 'registrationFailed') {
    finish(0);
  }
}

function fail(err) {
  if (finished) return;
  emit({ event: 'error', message: String((err && err.message) || err) });
  finish(3);
}

process.on('unhandledRejection', fail);

const timeoutMs = Number(opts['timeout-ms']);
// The deadline covers everything, browser launch included, so a run is bounded.
const timer = setTimeout(() => {
  if (finished) return;
  emit({ event: 'timeout' });
  finish(2);
}, timeoutMs);

async function main() {
  for (const name of ['url', 'host', 'token']) {
    if (!opts[name]) throw new Error(`missing --${name}`);
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error('bad --timeout-ms');

  ({ page, close } = await openJssipPage({
    debug: opts.debug,
    pagePort: Number(opts['page-port']),
    onEvent: onPageEvent,
  }));

  await page.evaluate(
    ({ url, host, token, debug }) => {
      if (debug) JsSIP.debug.enable('JsSIP:*');
      else JsSIP.debug.disable();

      const ua = new JsSIP.UA({
        sockets: [new JsSIP.WebSocketInterface(url)],
        uri: 'sip:anonymous@' + host,
        register: true,
        register_expires: 60,
        session_timers: true,
      });
      // Extra headers on REGISTER must be set on the registrator; the UA
      // configuration has no option for them in JsSIP 3.x.
      ua.registrator().setExtraHeaders(['WebRTC-Token: ' + token]);

      ua.on('connected', () => window.__emit({ event: 'connected' }));
      ua.on('disconnected', (e) => {
        if (e && (e.code || e.reason)) console.error(`ws closed: code=${e.code} reason=${e.reason}`);
        window.__emit({ event: 'disconnected' });
      });
      ua.on('registered', (e) => {
        // Same lookup JsSIP does: the Contact that points to us, its expires
        // param, falling back to an Expires header.
        let expires = null;
        const res = e.response;
        if (res) {
          const contacts = (res.headers.Contact || []).reduce((a, h) => a.concat(h.parsed || []), []);
          const mine = contacts.find((c) => c.uri && c.uri.user === ua.contact.uri.user);
          let val = mine ? mine.getParam('expires') : null;
          if (val == null && res.hasHeader('Expires')) val = res.getHeader('Expires');
          if (val != null && !Number.isNaN(Number(val))) expires = Number(val);
        }
        window.__emit({ event: 'registered', expires });
      });
      ua.on('registrationFailed', (e) => {
        window.__emit({
          event: 'registrationFailed',
          status_code: e.response ? e.response.status_code : null,
          reason_phrase: e.response ? e.response.reason_phrase : null,
          cause: e.cause == null ? null : String(e.cause),
        });
      });

      window.__stopUA = () =>
        new Promise((resolve) => {
          if (!ua.isConnected()) {
            ua.stop();
            resolve();
            return;
          }
          // ua.stop() may delay the socket close up to 2 s for pending transactions.
          ua.on('disconnected', () => resolve());
          setTimeout(resolve, 2500);
          ua.stop();
        });

      ua.start();
    },
    { url: opts.url, host: opts.host, token: opts.token, debug: opts.debug },
  );
}

main().catch(fail);
