#!/usr/bin/env node
// A real JsSIP 3.x UA in headless Debian Chromium, with Chromium's fake microphone, that
// registers with a SIP-over-WebSocket server and then makes or answers one call as it is told,
// the way the published browser SDK does (PROTOCOL.md sections 2, 3 and 5).
//
//   node jssip_call.mjs --url wss://127.0.0.1:PORT --host 127.0.0.1:PORT --token JWT \
//       [--user-data-dir DIR] [--timeout-ms 60000] [--debug]
//
// stdin: one JSON command per line:
//   {"cmd":"call","target":"sip:00000@HOST","token":"JWT"}   INVITE as client.startCall() does
//   {"cmd":"answer"}                                           accept the ringing incoming call
//   {"cmd":"hangup"}                                           BYE (or CANCEL before the answer)
//   {"cmd":"mute"}                                             the SDK's call.mute(true): JsSIP's session.mute()
//   {"cmd":"stop"}   (or end of stdin)                         un-REGISTER, close, exit 0
// stdout: one JSON event per line:
//   {"event":"sip","direction":"out"|"in","text":"..."}       every WebSocket frame, verbatim
//   {"event":"registered"} | {"event":"registrationFailed","status_code":403,...}
//   {"event":"session","direction":"incoming"|"outgoing","display_name":...,"from":...}
//   {"event":"progress","status_code":180} {"event":"accepted"} {"event":"confirmed"}
//   {"event":"postDialDelay","delay":"68.100","status_code":200}   the SDK's MESSAGE after the first 18x
//   {"event":"ended","originator":"local"|"remote"|"system","cause":"..."}
//   {"event":"failed","originator":...,"cause":"...","status_code":486}
//   {"event":"remoteAudio","rms":0.2,"peak_hz":440,"audio_level":0.3,"total_audio_energy":0.01,...}
//        once the far end's audio is audible in the page: WebAudio analyser on the remote
//        track (played through an <audio> element too) on two polls in a row (so that the
//        analysed window is all sound, not an onset) and getStats() inbound-rtp both > 0
//   {"event":"done","command":"answer"}                       a command was carried out
//   {"event":"timeout"} (exit 2)   {"event":"error","message":"..."} (exit 3)
// stderr: page console errors / exceptions (everything, with --debug).

import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { installSoundMeter } from '../chromium.mjs';
import { emit, MEDIA_ARGS, openJssipPage, SHUTDOWN_MS, withTimeout } from './harness.mjs';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    host: { type: 'string' },
    token: { type: 'string' },
    'user-data-dir': { type: 'string' },
    'timeout-ms': { type: 'string', default: '60000' },
    'page-port': { type: 'string', default: '0' },
    debug: { type: 'boolean', default: false },
  },
});

let close = null;
let page = null;
let finished = false;

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

function fail(err) {
  if (finished) return;
  emit({ event: 'error', message: String((err && err.stack) || err) });
  finish(3);
}

process.on('unhandledRejection', fail);

const timeoutMs = Number(opts['timeout-ms']);
const timer = setTimeout(() => {
  if (finished) return;
  emit({ event: 'timeout' });
  finish(2);
}, timeoutMs);

function onPageEvent(ev) {
  if (!finished) emit(ev);
}

// Commands run one after the other, in the order they were written.
let queue = Promise.resolve();
function onCommand(line) {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  queue = queue.then(async () => {
    if (command.cmd === 'stop') {
      await finish(0);
      return;
    }
    if (!page) throw new Error('page not ready');
    await page.evaluate((c) => window.__command(c), command);
    emit({ event: 'done', command: command.cmd });
  }).catch(fail);
}

// Everything below runs inside the page.
function pageMain({ url, host, token, debug }) {
  if (debug) JsSIP.debug.enable('JsSIP:*');
  else JsSIP.debug.disable();
  const emit = (ev) => window.__emit(ev);

  // Every frame, both ways, so a test can show the SIP exchange when something goes wrong.
  const socket = new JsSIP.WebSocketInterface(url);
  const send = socket.send.bind(socket);
  socket.send = (message) => {
    emit({ event: 'sip', direction: 'out', text: String(message) });
    return send(message);
  };
  const onMessage = socket._onMessage.bind(socket);
  socket._onMessage = (msg) => {
    if (typeof msg.data === 'string') emit({ event: 'sip', direction: 'in', text: msg.data });
    return onMessage(msg);
  };

  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: 'sip:anonymous@' + host,
    register: true,
    register_expires: 60,
    session_timers: true,
  });
  ua.registrator().setExtraHeaders(['WebRTC-Token: ' + token, 'SDK-Version: 44eb6c8e']);
  ua.on('registered', () => emit({ event: 'registered' }));
  ua.on('registrationFailed', (e) =>
    emit({
      event: 'registrationFailed',
      status_code: e.response ? e.response.status_code : null,
      reason_phrase: e.response ? e.response.reason_phrase : null,
      cause: e.cause == null ? null : String(e.cause),
    }),
  );

  const media = { mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } };
  let session = null;

  // Listen to the far end: an <audio> element plays the remote track (Chromium decodes
  // remote audio only for a sink), an analyser measures it, getStats() says what arrived.
  function watchRemoteAudio(current) {
    const pc = current.connection;
    const tracks = pc.getReceivers().map((r) => r.track).filter((t) => t && t.kind === 'audio');
    const stream = new MediaStream(tracks);
    const element = document.createElement('audio');
    element.autoplay = true;
    element.srcObject = stream;
    document.body.appendChild(element);
    element.play().catch((err) => console.error('audio element: ' + err));
    const meter = window.__soundMeter(stream);
    let reported = false;
    let audible = 0; // polls in a row with sound: the second one's window lies wholly within it
    const poll = setInterval(async () => {
      const { rms, hz } = meter.measure();
      const stats = await pc.getStats();
      let inbound = null;
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') inbound = s;
      });
      audible = rms > 0.01 ? audible + 1 : 0;
      if (!reported && inbound && audible >= 2 && inbound.totalAudioEnergy > 0) {
        reported = true;
        emit({
          event: 'remoteAudio',
          rms,
          peak_hz: hz,
          audio_level: inbound.audioLevel,
          total_audio_energy: inbound.totalAudioEnergy,
          packets_received: inbound.packetsReceived,
          codec: (stats.get(inbound.codecId) || {}).mimeType || null,
        });
      }
    }, 100);
    const stop = () => {
      clearInterval(poll);
      meter.close();
      element.srcObject = null;
    };
    current.on('ended', stop);
    current.on('failed', stop);
  }

  // The published SDK's post-dial-delay report: on the first 18x, one out-of-dialog MESSAGE
  // naming the INVITE's Call-ID, the delay in ms as a string with 3 decimals (PROTOCOL.md section 3).
  function reportPostDialDelay(current) {
    const sentAt = performance.now();
    current.once('progress', () => {
      const delay = (performance.now() - sentAt).toFixed(3);
      const report = (status_code) => emit({ event: 'postDialDelay', delay, status_code });
      ua.sendMessage('sip:00000@' + host, JSON.stringify({ clientPostDialDelay: delay }), {
        contentType: 'text/plain',
        extraHeaders: ['X-Call-Relates: ' + current._request.call_id],
        eventHandlers: {
          succeeded: (e) => report(e.response.status_code),
          failed: (e) => report(e.response ? e.response.status_code : String(e.cause)),
        },
      });
    });
  }

  // The machine's other interfaces are not ours to send to: the hub only learns loopback candidates.
  function loopbackCandidatesOnly(current) {
    current.on('sdp', (e) => {
      if (e.originator !== 'local') return;
      e.sdp = e.sdp
        .split('\r\n')
        .filter((line) => !line.startsWith('a=candidate:') || / (127\.0\.0\.1|::1) /.test(line))
        .join('\r\n');
    });
  }

  function follow(current, direction) {
    loopbackCandidatesOnly(current);
    const request = current._request;
    emit({
      event: 'session',
      direction,
      display_name: current.remote_identity.display_name || null,
      from: current.remote_identity.uri.toString(),
      call_id: request ? request.call_id : null,
    });
    current.on('progress', (e) => emit({ event: 'progress', status_code: e.response ? e.response.status_code : null }));
    if (direction === 'outgoing') reportPostDialDelay(current);
    current.on('accepted', () => emit({ event: 'accepted' }));
    current.on('confirmed', () => {
      emit({ event: 'confirmed' });
      watchRemoteAudio(current);
    });
    current.on('ended', (e) => emit({ event: 'ended', originator: e.originator, cause: String(e.cause) }));
    current.on('failed', (e) =>
      emit({
        event: 'failed',
        originator: e.originator,
        cause: String(e.cause),
        status_code: e.message && e.message.status_code ? e.message.status_code : null,
      }),
    );
  }

  ua.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return;
    session = e.session;
    follow(session, 'incoming');
  });

  window.__command = (command) => {
    if (command.cmd === 'call') {
      // client.startCall() of the published SDK: token and SDK version as extra headers, no ICE servers.
      session = ua.call(command.target, {
        ...media,
        extraHeaders: ['WebRTC-Token: ' + command.token, 'SDK-Version: 44eb6c8e'],
        sessionTimersExpires: 90,
      });
      follow(session, 'outgoing');
    } else if (command.cmd === 'answer') {
      if (!session) throw new Error('no incoming call to answer');
      session.answer(media);
    } else if (command.cmd === 'hangup') {
      if (!session) throw new Error('no call to hang up');
      session.terminate();
    } else if (command.cmd === 'mute') {
      if (!session) throw new Error('no call to mute');
      session.mute({ audio: true });
    } else {
      throw new Error('unknown command ' + JSON.stringify(command));
    }
  };

  window.__stopUA = () =>
    new Promise((resolve) => {
      if (!ua.isConnected()) {
        ua.stop();
        resolve();
        return;
      }
      ua.on('disconnected', () => resolve());
      setTimeout(resolve, 2500);
      ua.stop();
    });

  ua.start();
}

async function main() {
  for (const name of ['url', 'host', 'token']) {
    if (!opts[name]) throw new Error(`missing --${name}`);
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error('bad --timeout-ms');
  ({ page, close } = await openJssipPage({
    args: MEDIA_ARGS,
    userDataDir: opts['user-data-dir'] || null,
    debug: opts.debug,
    pagePort: Number(opts['page-port']),
    onEvent: onPageEvent,
  }));
  await page.evaluate(installSoundMeter);
  await page.evaluate(pageMain, { url: opts.url, host: opts.host, token: opts.token, debug: opts.debug });
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', onCommand);
  lines.on('close', () => {
    queue = queue.then(() => finish(0));
  });
}

main().catch(fail);
