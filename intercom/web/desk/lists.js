// The doors (online or not) and the call log with its voicemails, from /desk/api/.
import { callApi } from './credential.js';
import { $, item } from './ui.js';

export const CALLS_SHOWN = 20;

export async function showDoors() {
  const { doors } = await (await callApi('doors')).json();
  $('doors').replaceChildren(
    ...doors.map((door) =>
      item({ name: door.identity, online: door.online ? 'online' : 'offline' }, {
        identity: door.identity,
        online: door.online,
      }),
    ),
  );
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : '';
}

function describe(call) {
  if (call.answeredBy) return `answered by ${call.answeredBy}`;
  return call.status;
}

export async function showCalls() {
  const { calls } = await (await callApi(`calls?limit=${CALLS_SHOWN}`)).json();
  $('calls').replaceChildren(
    ...calls.map((call) => {
      const parts = { from: call.from, what: describe(call), when: when(call.startedAt) };
      if (call.voicemail) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'play';
        button.textContent = `Voicemail (${Math.round(call.voicemail.duration)} s)`;
        button.addEventListener('click', () => playVoicemail(call.voicemail));
        parts.voicemail = button;
      }
      return item(parts, { id: call.id, status: call.status });
    }),
  );
}

let playing = null; // the blob URL playing now, released when the next one starts

/** The recording needs the credential, which an <audio src> cannot send: fetch it, play a blob. */
export async function playVoicemail(voicemail) {
  const blob = await (await callApi(voicemail.url)).blob();
  if (playing) URL.revokeObjectURL(playing);
  playing = URL.createObjectURL(blob);
  const player = $('voicemail');
  player.hidden = false;
  player.dataset.voicemail = voicemail.id;
  player.src = playing;
  await player.play();
}

/**
 * A notification's link, /desk/#voicemail=<recording id> (docs/home-assistant.md): that voicemail
 * in the player. A browser may not start sound without a tap: then it waits, one tap away.
 */
export async function openLinkedVoicemail() {
  const id = new URLSearchParams(location.hash.slice(1)).get('voicemail');
  if (!id) return;
  history.replaceState(null, '', location.pathname);
  try {
    await playVoicemail({ id, url: `voicemails/${encodeURIComponent(id)}.wav` });
  } catch (error) {
    if (error.name !== 'NotAllowedError') throw error; // not found, or gone: the page says so
  }
}
