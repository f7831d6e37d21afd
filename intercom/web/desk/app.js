// The web desk: this phone or laptop rings with the desks when someone is at the door; it answers,
// talks, opens the door, and lists the calls and their voicemails. Plain ES modules bundled by
// build.mjs with the SDK; the hub serves the result at /desk/ (intercom/hub/desk_pages.py).
import { MessageBirdClient } from '../sdk/src/index.js';
import { Revoked, credential, forget, identity, refreshToken } from './credential.js';
import { applyDevices, watchDevices } from './devices.js';
import { openLinkedVoicemail, showCalls, showDoors } from './lists.js';
import { pair } from './pairing.js';
import { prepareSound, startRinging, stopRinging } from './ringer.js';
import { $, notify, showView } from './ui.js';

const REFRESH_SECONDS = 5; // doors' state and the call log; also how soon a revoked phone notices
const ENDED = new Set(['ended', 'failed']);

let client = null;
let ringing = null; // the IncomingCall on screen
let call = null; // the call in progress
let refresher = null;
let removed = false;

function setStatus(status) {
  $('status').dataset.status = status;
  $('status').textContent = status;
}

/** The credential was revoked (or is unknown): stop everything, and say so. */
function stopRemoved() {
  if (removed) return;
  removed = true;
  clearInterval(refresher);
  stopRinging();
  forget();
  client?.destroy();
  setStatus('offline');
  showView('removed');
}

/** Run `work`; a revoked credential stops the page, anything else is told and the page goes on. */
async function guarded(work) {
  try {
    return await work();
  } catch (error) {
    if (error instanceof Revoked) stopRemoved();
    else notify(error.message);
    return undefined;
  }
}

async function tokenOrStop() {
  try {
    return await refreshToken();
  } catch (error) {
    if (error instanceof Revoked) stopRemoved();
    throw error; // the SDK counts it as a failed refresh
  }
}

const refreshLists = () => guarded(() => Promise.all([showDoors(), showCalls()]));

function backToIdle() {
  ringing = null;
  call = null;
  stopRinging();
  if (removed) return;
  showView('idle');
  refreshLists();
}

function onIncoming(incoming) {
  if (ringing || call) {
    incoming.reject(); // busy: the desks and the other phones still ring
    return;
  }
  ringing = incoming;
  $('caller').textContent = incoming.displayName || incoming.remoteIdentity || 'Someone';
  $('caller').dataset.identity = incoming.remoteIdentity || '';
  showView('ringing');
  startRinging();
}

function onCanceled(incoming) {
  if (incoming && ringing && incoming !== ringing) return;
  if (!ringing) return;
  notify(`Missed call from ${$('caller').textContent}`);
  backToIdle();
}

function showCallStatus(status) {
  $('call-status').dataset.status = status;
  $('call-status').textContent = status;
  if (ENDED.has(status)) backToIdle();
}

async function answer() {
  const incoming = ringing;
  if (!incoming) return;
  stopRinging();
  notify(null);
  $('peer').textContent = $('caller').textContent;
  $('unlock-result').textContent = '';
  $('mute').setAttribute('aria-pressed', 'false');
  showView('call');
  call = await incoming.accept();
  ringing = null;
  call.on('status', showCallStatus);
  call.on('muted', (muted) => $('mute').setAttribute('aria-pressed', String(Boolean(muted))));
  showCallStatus(call.status);
  await guarded(() => applyDevices(call));
}

function reject() {
  const incoming = ringing;
  ringing = null; // before reject(): the SDK then says `canceled`, which is no missed call
  incoming?.reject();
  backToIdle();
}

async function openDoor() {
  const result = $('unlock-result');
  result.textContent = 'Asking the door…';
  let delivered = false;
  try {
    delivered = await call.requestUnlock();
  } catch (error) {
    notify(error.message);
  }
  // The door decides by who the hub says we are; "sent" is all this side can know.
  result.dataset.result = delivered ? 'sent' : 'refused';
  result.textContent = delivered ? 'The door was asked to open.' : 'The door did not accept the request.';
}

function wireButtons() {
  $('answer').addEventListener('click', answer);
  $('reject').addEventListener('click', reject);
  $('hangup').addEventListener('click', () => call?.disconnect());
  $('mute').addEventListener('click', () => call?.mute(!call.isMuted));
  $('open-door').addEventListener('click', openDoor);
  for (const key of $('keypad').querySelectorAll('button')) {
    key.addEventListener('click', () => call?.sendDigits(key.textContent));
  }
}

async function startDesk() {
  showView('idle');
  document.title = `Intercom: ${identity()}`;
  wireButtons();
  prepareSound();
  client = new MessageBirdClient({ refreshToken: tokenOrStop });
  client.on('status', setStatus);
  client.on('error', (error) => notify(`${error.code}: ${error.message}`));
  client.on('incoming', onIncoming);
  client.on('canceled', onCanceled);
  refresher = setInterval(refreshLists, REFRESH_SECONDS * 1000);
  // The token first, the lists beside it: registering is what lets the page ring.
  const lists = refreshLists();
  const jwt = await tokenOrStop().catch(() => null);
  if (jwt && !removed) client.setup({ jwt });
  await lists;
  guarded(openLinkedVoicemail);
  window.addEventListener('hashchange', () => guarded(openLinkedVoicemail));
  guarded(() => watchDevices(() => call));
}

async function main() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js', { scope: '/desk/' }).catch(() => {});
  }
  if (location.pathname.endsWith('/pair')) await pair();
  else if (!credential()) showView('unpaired');
  else await startDesk();
}

main();
