// A call, either direction, over one JsSIP RTCSession: the seed's statuses (each once, in order),
// `error`, mute, DTMF, the far end's audio on an <audio> element, and hang-up. Beyond the seed:
// requestUnlock(), the `digits` and `unlock` events, and remoteIdentity (docs/protocol.md).

import { Emitter } from './events.js';
import { InternalError } from './errors.js';
import { CallStatus } from './status.js';
import { assertedIdentity } from './headers.js';

export const DTMF_DIGITS = /^[0-9*#]+$/;
export const DTMF_TONE_MS = 100;
export const DTMF_GAP_MS = 500; // 600 ms from one digit to the next, as the published client
export const UNLOCK_CONTENT_TYPE = 'application/vnd.intercom.unlock';
const ORDER = Object.values(CallStatus);
const DISCONNECT_WAIT_MS = 2000; // hang-up waits at most this long for the far end's answer

/** Where a call's sound plays: an <audio> element in a page, nothing elsewhere (node tests). */
function defaultAudioElement() {
  if (typeof document === 'undefined') return null;
  const audio = document.createElement('audio');
  audio.autoplay = true;
  return audio;
}

export class Call extends Emitter {
  #session = null;
  #status = null;
  #muted = false;
  #audio;
  #sinkId = null;
  #ended = null;

  /** Made by startCall() or IncomingCall.accept(), not by apps. `getUserMedia` opens a
   * microphone for setInputSource (the browser's unless given). */
  constructor({ audioElement = defaultAudioElement(), getUserMedia } = {}) {
    super();
    this.id = '';
    /** Who the hub asserts is at the other end (`null`: nobody it knows, e.g. its own flow). */
    this.remoteIdentity = null;
    this.#audio = audioElement;
    this._getUserMedia = getUserMedia ?? ((constraints) => navigator.mediaDevices.getUserMedia(constraints));
    this.#ended = new Promise((resolve) => {
      this._settle = resolve;
    });
  }

  get status() {
    return this.#status;
  }

  get isMuted() {
    return this.#muted;
  }

  /** The element the far end's audio plays on (null outside a page). */
  get audioElement() {
    return this.#audio;
  }

  /** JsSIP's events for a session, handed to ua.call() (so none is missed) or bound to an
   * incoming session. */
  _handlers() {
    return {
      sending: ({ request }) => {
        this.id = request.call_id;
      },
      peerconnection: ({ peerconnection }) => this.#watchMedia(peerconnection),
      progress: ({ originator }) => originator === 'remote' && this.#advance(CallStatus.RINGING),
      accepted: ({ originator, response }) => {
        if (originator === 'remote' && response) this.remoteIdentity = assertedIdentity(response);
        this.#advance(CallStatus.ACCEPTED);
      },
      confirmed: () => this.#advance(CallStatus.CONFIRMED),
      ended: () => this.#advance(CallStatus.ENDED),
      failed: ({ originator, message }) => {
        const raw = originator === 'remote' && message?.data ? message.data : null;
        if (this.#advance(CallStatus.FAILED)) this._emit('error', new InternalError(`RTC Session failed: ${raw}`));
      },
      newDTMF: ({ originator, dtmf, request }) => {
        if (originator === 'remote') this._emit('digits', dtmf.tone, assertedIdentity(request));
      },
      newInfo: ({ originator, info, request }) => {
        if (originator === 'remote' && info.contentType === UNLOCK_CONTENT_TYPE) {
          this._emit('unlock', assertedIdentity(request));
        }
      },
    };
  }

  _attach(session) {
    this.#session = session;
    if (session.connection) this.#watchMedia(session.connection);
  }

  /** An incoming call's session: its Call-ID is the INVITE's. */
  _bind(session, callId) {
    for (const [event, handler] of Object.entries(this._handlers())) session.on(event, handler);
    this.id = callId;
    this._attach(session);
  }

  /** An outgoing call starts `connecting` at once; the event comes a tick later, so that the
   * app that got the call from startCall() hears it too. */
  _start() {
    this.#status = CallStatus.CONNECTING;
    queueMicrotask(() => this._emit('status', CallStatus.CONNECTING));
  }

  /** Resolves once the call has ended or failed. */
  get ended() {
    return this.#ended;
  }

  #advance(status) {
    const current = ORDER.indexOf(this.#status);
    if (this.#finished() || ORDER.indexOf(status) <= current) return false;
    this.#status = status;
    this._emit('status', status);
    if (this.#finished()) {
      this.#release();
      this._settle();
    }
    return true;
  }

  #finished() {
    return this.#status === CallStatus.FAILED || this.#status === CallStatus.ENDED;
  }

  #answered() {
    return this.#status === CallStatus.ACCEPTED || this.#status === CallStatus.CONFIRMED;
  }

  #watchMedia(connection) {
    connection.addEventListener('track', (event) => {
      if (!this.#audio || event.track.kind !== 'audio') return;
      this.#audio.srcObject = event.streams?.[0] ?? new MediaStream([event.track]);
      this.#audio.play?.().catch(() => {}); // a page without a tap yet: the element plays once allowed
    });
  }

  /** Send silence instead of the microphone (RTP keeps flowing, as the published client's). */
  mute(muted) {
    muted = Boolean(muted);
    if (muted === this.#muted) return;
    this.#muted = muted;
    if (this.#session?.connection) {
      if (muted) this.#session.mute({ audio: true });
      else this.#session.unmute({ audio: true });
    }
    this._emit('muted', muted);
  }

  /** DTMF as one INFO per digit (application/dtmf-relay, 100 ms each, 600 ms apart), after any
   * still queued. Only 0-9, * and # (a TypeError otherwise); only once the call is answered. */
  sendDigits(digits) {
    if (typeof digits !== 'string' || !DTMF_DIGITS.test(digits)) {
      throw new TypeError(`DTMF digits are 0-9, * and #, not ${JSON.stringify(digits)}`);
    }
    if (!this.#answered()) throw new Error('digits can be sent once the call is answered');
    this.#session.sendDTMF(digits, { transportType: 'INFO', duration: DTMF_TONE_MS, interToneGap: DTMF_GAP_MS });
  }

  /** Ask the far end to open its door: one INFO, no code typed (the door decides by who the hub
   * says sent it). Resolves true when it arrived, false when the hub or the far end refused it
   * (403: the call is not bridged to a client) or no answer came. */
  requestUnlock() {
    if (!this.#answered()) return Promise.reject(new Error('an unlock can be requested once the call is answered'));
    return new Promise((resolve) => {
      const session = this.#session;
      const onInfo = ({ originator, info }) => {
        if (originator !== 'local') return;
        session.removeListener('newInfo', onInfo);
        info.on('succeeded', () => resolve(true));
        info.on('failed', () => resolve(false));
      };
      session.on('newInfo', onInfo);
      try {
        session.sendInfo(UNLOCK_CONTENT_TYPE);
      } catch (error) {
        session.removeListener('newInfo', onInfo);
        resolve(false);
      }
      this.#ended.then(() => resolve(false)); // a call that ends first answers nothing
    });
  }

  /** Capture from another microphone: `{audio: {deviceId}}`, as the seed. No renegotiation: the
   * new track replaces the old one on the same sender. */
  async setInputSource(constraints) {
    const deviceId = constraints?.audio?.deviceId;
    if (typeof deviceId !== 'string' || !deviceId) {
      throw new TypeError(`setInputSource takes {audio: {deviceId}}, not ${JSON.stringify(constraints)}`);
    }
    const sender = this.#session?.connection?.getSenders().find((each) => each.track?.kind === 'audio');
    if (this.#finished() || !sender) throw new Error('setInputSource needs a call with a microphone');
    const stream = await this._getUserMedia({ audio: { deviceId: { exact: deviceId } }, video: false });
    const [track] = stream.getAudioTracks();
    track.enabled = !this.#muted;
    const old = sender.track;
    await sender.replaceTrack(track);
    old?.stop();
  }

  /** Play the far end on another speaker (setSinkId on the call's <audio> element). */
  async setOutputSource(deviceId) {
    if (typeof deviceId !== 'string') throw new TypeError('setOutputSource takes a deviceId string');
    if (!this.#audio?.setSinkId) throw new Error('this browser cannot choose a speaker (no setSinkId)');
    await this.#audio.setSinkId(deviceId);
    this.#sinkId = deviceId;
  }

  /** The speaker chosen with setOutputSource, or null for the default. */
  get outputSource() {
    return this.#sinkId;
  }

  /** Hang up: BYE once answered, CANCEL before. Resolves when the call is over (at most ~2 s). */
  async disconnect() {
    if (!this.#finished() && this.#session && !this.#session.isEnded()) {
      try {
        this.#session.terminate();
      } catch (error) {
        console.warn('hang-up failed', error);
      }
    }
    await Promise.race([this.#ended, new Promise((resolve) => setTimeout(resolve, DISCONNECT_WAIT_MS))]);
  }

  /** The connection to the hub is gone: so is the call. */
  _lost() {
    try {
      if (!this.#session.isEnded()) this.#session.terminate();
    } catch {
      // the session may already be gone with its transport
    }
    this.#advance(this.#answered() ? CallStatus.ENDED : CallStatus.FAILED);
  }

  #release() {
    if (this.#audio) this.#audio.srcObject = null;
  }
}
