#!/usr/bin/env node
// Our JavaScript SDK (intercom/web/dist/intercom-sdk.js) in Debian Chromium, on a page of the
// hub's own https origin, trusting the test's CA (browser.mjs): a page as the web desk is one,
// driven by JSON commands, reporting the SDK's events. The page is https://HUB/sdk-test/ and loads
// the SDK file as it ships from there, so its WebSocket goes to the real hub with the hub's own
// Origin and the SDK's default host (the page's origin).
//
//   node sdk_page.mjs --origin https://127.0.0.1:PORT --ca-file CA.pem --sdk dist/intercom-sdk.js
//
// stdin, one JSON command per line (each answered by {"event":"done","command":...,"result":...}):
//   {"cmd":"setup","token":JWT,"retryDelayMs":200}   new IntercomClient() and setup({jwt}) (not awaited)
//   {"cmd":"token","token":JWT}       what refreshToken() returns from now on
//   {"cmd":"call","params":{...}}     client.startCall(params)
//   {"cmd":"answer"} {"cmd":"reject"} the ringing incoming call
//   {"cmd":"hangup"} {"cmd":"mute","muted":true} {"cmd":"digits","digits":"1#"} {"cmd":"unlock"}
//   {"cmd":"devices"}                 new MediaSources().get()
//   {"cmd":"input","deviceId":ID} {"cmd":"output","deviceId":ID}   the call's microphone, speaker
//   {"cmd":"measure"}                 the far end's sound now: {rms, peak_hz, max_rms}
//   {"cmd":"destroy"}                 client.destroy()
//   {"cmd":"stop"} (or end of stdin)  close Chromium, exit 0
// A command that throws answers {"result":{"error":{"name","message"}}}.
// stdout also: {"event":"sip","direction":"out"|"in","text"} every WebSocket frame; the SDK's
// events: status, error {name,code,message}, incoming {id,displayName,remoteIdentity}, canceled
// {id}, call.status, call.error {code,message}, muted, digits {key,from}, refreshToken.

import fs from 'node:fs';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { installSoundMeter } from '../chromium.mjs';
import { launch } from './browser.mjs';

const { values: opts } = parseArgs({
  options: {
    origin: { type: 'string' },
    'ca-file': { type: 'string' },
    sdk: { type: 'string' },
    debug: { type: 'boolean', default: false },
  },
});
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const browser = await launch({ caFile: opts['ca-file'], debug: opts.debug });
let finished = false;
async function finish(code) {
  if (finished) return;
  finished = true;
  await Promise.race([browser.close(), new Promise((resolve) => setTimeout(resolve, 3000))]);
  process.exit(code);
}
process.on('unhandledRejection', (error) => {
  emit({ event: 'harnessError', message: String(error?.stack || error) });
  finish(3);
});

const page = await browser.newPage();
// Only the SDK file is served by the router; the document is the hub's own answer to /sdk-test/
// (its 404): a page Playwright made up would not count as the loopback origin it claims, and
// Chromium's Local Network Access checks would then refuse its WebSocket to the hub.
await page.route(`${opts.origin}/sdk-test/intercom-sdk.js`, (route) =>
  route.fulfill({ contentType: 'text/javascript', body: fs.readFileSync(opts.sdk) }),
);
page.on('websocket', (socket) => {
  socket.on('framesent', ({ payload }) => emit({ event: 'sip', direction: 'out', text: String(payload) }));
  socket.on('framereceived', ({ payload }) => emit({ event: 'sip', direction: 'in', text: String(payload) }));
});
await page.exposeFunction('__emit', (event) => emit(event));
await page.goto(`${opts.origin}/sdk-test/`);
await page.addScriptTag({
  type: 'module',
  content: "import * as sdk from '/sdk-test/intercom-sdk.js'; window.__sdk = sdk; window.__loaded = true;",
});
await page.waitForFunction(() => window.__loaded === true, null, { timeout: 10000 });
await page.evaluate(installSoundMeter);
await page.evaluate(pageMain);
emit({ event: 'ready' });

let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  queue = queue.then(async () => {
    if (command.cmd === 'stop') return finish(0);
    const result = await page.evaluate((c) => window.__command(c), command);
    emit({ event: 'done', command: command.cmd, result });
  });
});
lines.on('close', () => queue.then(() => finish(0)));

// Everything below runs inside the page.
function pageMain() {
  const { IntercomClient } = window.__sdk;
  const emit = (event) => window.__emit(event);
  const state = { client: null, token: null, incoming: null, call: null, sound: null };

  function follow(call) {
    state.call = call;
    call.on('status', (status) => {
      emit({ event: 'call.status', status });
      if ((status === 'accepted' || status === 'confirmed') && !state.sound) listen(call);
    });
    call.on('error', (error) => emit({ event: 'call.error', code: error.code, message: error.message }));
    call.on('muted', (muted) => emit({ event: 'muted', muted }));
    call.on('digits', (key, from) => emit({ event: 'digits', key, from }));
    return call;
  }

  // The far end's sound as the SDK plays it: an analyser on its <audio> element's stream.
  function listen(call) {
    const stream = call.audioElement?.srcObject;
    if (!stream) return setTimeout(() => listen(call), 100);
    const meter = window.__soundMeter(stream);
    const sound = { max_rms: 0 };
    sound.measure = () => {
      const { rms, hz } = meter.measure();
      sound.max_rms = Math.max(sound.max_rms, rms);
      return { rms, peak_hz: hz, max_rms: sound.max_rms };
    };
    sound.timer = setInterval(sound.measure, 100);
    state.sound = sound;
  }

  const commands = {
    setup({ token, retryDelayMs }) {
      state.token = token;
      state.client = new IntercomClient({
        refreshToken: async () => {
          emit({ event: 'refreshToken' });
          return state.token;
        },
      });
      if (retryDelayMs !== undefined) state.client.forbiddenRetryDelay = retryDelayMs;
      const client = state.client;
      client.on('status', (status) => emit({ event: 'status', status }));
      client.on('error', (error) => emit({ event: 'error', name: error.name, code: error.code, message: error.message }));
      client.on('incoming', (incoming) => {
        state.incoming = incoming;
        emit({ event: 'incoming', id: incoming.id, displayName: incoming.displayName, remoteIdentity: incoming.remoteIdentity });
      });
      client.on('canceled', (incoming) => emit({ event: 'canceled', id: incoming.id }));
      client.setup({ jwt: token }).catch(() => {}); // the error event says it
      return { host: client.host };
    },
    token({ token }) {
      state.token = token;
    },
    call({ params }) {
      state.sound = null;
      return { status: follow(state.client.startCall(params)).status };
    },
    answer() {
      state.sound = null;
      follow(state.incoming.accept());
    },
    reject() {
      state.incoming.reject();
    },
    async hangup() {
      await state.call.disconnect();
    },
    mute({ muted }) {
      state.call.mute(muted);
      return { isMuted: state.call.isMuted };
    },
    digits({ digits }) {
      state.call.sendDigits(digits);
    },
    unlock() {
      return state.call.requestUnlock();
    },
    devices() {
      return new window.__sdk.MediaSources().get();
    },
    async input({ deviceId }) {
      await state.call.setInputSource({ audio: { deviceId } });
    },
    async output({ deviceId }) {
      await state.call.setOutputSource(deviceId);
      return { outputSource: state.call.outputSource };
    },
    measure() {
      return state.sound ? state.sound.measure() : null;
    },
    async destroy() {
      await state.client.destroy();
    },
  };

  window.__command = async (command) => {
    try {
      return (await commands[command.cmd](command)) ?? null;
    } catch (error) {
      return { error: { name: error.name, message: error.message } };
    }
  };
}
