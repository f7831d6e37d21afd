// The seed SDK's client: one registration with a hub over JsSIP, kept alive for as long as the
// page wants, following the published client and the Python SDK step by step (PROTOCOL.md 1-2):
//
// * setup({jwt}) opens a WebSocket and REGISTERs: status connecting, then connected.
// * Before the registration expires it calls refreshToken() and re-REGISTERs with the new token.
// * 403: wait 5 s, refreshToken(), retry on a new WebSocket; after 5 refusals status error, a
//   ForbiddenError (403), then offline. 406: NotAcceptableError at once. Any other final error:
//   InternalError (500, "Could not register to WebRTC Server"). Neither is retried.
// * An unexpected close: status connecting, the calls end, JsSIP reconnects with back-off
//   (2 s doubling to 30 s) and registers again: connected.
// * destroy() hangs up, un-REGISTERs, closes the socket and ends offline.

import * as JsSIP from 'jssip';
import { Emitter } from './events.js';
import { ForbiddenError, InternalError, NotAcceptableError } from './errors.js';
import { ClientStatus } from './status.js';
import { SDK_VERSION, encodeUserData, userDetails } from './headers.js';
import { Call } from './call.js';
import { IncomingCall } from './incoming.js';

export const REQUESTED_EXPIRES = 60;
const CALL_TARGET_USER = '00000';

/** `{url, domain}` for the `host` option: `wss://host:port` or a bare `host:port` (wss), or the
 * page's own origin when not given. `domain` is what the SIP URIs name. */
export function hubAddress(host, location = globalThis.location) {
  if (host === undefined || host === null || host === '') {
    if (!location?.host) throw new TypeError('MessageBirdClient needs host outside a page');
    host = location.host;
  }
  const match = /^(?:(wss|ws):\/\/)?([^/?#\s]+)\/?$/i.exec(String(host));
  if (!match) throw new TypeError(`host must be wss://host[:port] or host[:port], not ${JSON.stringify(host)}`);
  const [, scheme = 'wss', domain] = match;
  return { url: `${scheme.toLowerCase()}://${domain}`, domain };
}

/** When to re-register, as JsSIP does: 5 s early for short grants (half-way for the shortest: a
 * token near its end), else at a random point between half-way and 32 s early. In seconds. */
export function refreshDelay(expires, random = Math.random) {
  if (expires <= 64) return Math.max(expires - 5, expires / 2);
  return expires / 2 + (expires / 2 - 32) * random();
}

/** The expiry the hub granted our Contact (`+sip.instance` and reg-id, else the URI user), else
 * the Expires header, else what we asked for; `null` when the answer names none of ours. */
export function grantedExpires(response, instanceId, contactUser) {
  let ours = null;
  for (const contact of response.parseHeader ? allContacts(response) : []) {
    const instance = (contact.getParam('+sip.instance') ?? '').replace(/"/g, '');
    if (instance === `<urn:uuid:${instanceId}>` && String(contact.getParam('reg-id')) === '1') {
      ours = contact;
      break;
    }
    if (contact.uri?.user === contactUser) ours = contact;
  }
  if (!ours) return null;
  const expires = Number(ours.getParam('expires') ?? response.getHeader('Expires') ?? REQUESTED_EXPIRES);
  return Number.isFinite(expires) ? Math.max(expires, 1) : REQUESTED_EXPIRES;
}

function allContacts(response) {
  const contacts = [];
  const count = response.headers.Contact?.length ?? 0;
  for (let index = 0; index < count; index++) {
    const parsed = response.parseHeader('contact', index);
    if (parsed) contacts.push(parsed);
  }
  return contacts;
}

/** TURN servers from the REGISTER answer's JSON body, as RTCIceServer entries (PROTOCOL.md 2). */
export function turnServers(body) {
  try {
    const turn = JSON.parse(body || '{}')?.turn;
    if (!turn || !Array.isArray(turn.servers)) return [];
    const { username, password } = turn.credentials ?? {};
    return [{ urls: turn.servers, username, credential: password }];
  } catch {
    console.warn('ignoring the REGISTER answer: its body is not JSON');
    return [];
  }
}

export class MessageBirdClient extends Emitter {
  /** The seed's timings; settable (tests shorten them). Milliseconds. */
  forbiddenRetryDelay = 5000;
  forbiddenAttempts = 5;
  reconnectDelayMin = 2000;
  reconnectDelayMax = 30000;
  unregisterTimeout = 2000;

  #refreshToken;
  #url;
  #domain;
  #status = ClientStatus.OFFLINE;
  #token = null;
  #ua = null;
  #instanceId = null;
  #pending = null; // setup()'s promise, settled once connected or failed for good
  #forbiddenCount = 0;
  #timer = null; // the next re-REGISTER, or the next try after a 403
  #stopping = false; // a disconnect we asked for: not a lost connection
  #turn = [];
  #calls = new Set();
  #incoming = new Map();

  /** `refreshToken`: an async function returning a fresh JWT; `host`: `wss://host:port` (or a
   * bare `host:port`), the page's own origin when not given. */
  constructor({ refreshToken, host } = {}) {
    super();
    if (typeof refreshToken !== 'function') {
      throw new TypeError('MessageBirdClient needs refreshToken: a function returning a fresh JWT');
    }
    this.#refreshToken = refreshToken;
    ({ url: this.#url, domain: this.#domain } = hubAddress(host));
  }

  get status() {
    return this.#status;
  }

  /** The hub's SIP domain: what follows `sip:anonymous@`. */
  get host() {
    return this.#domain;
  }

  /** The WebSocket JsSIP talks over; tests give a fake one (a JsSIP Socket). */
  _newSocket(url) {
    return new JsSIP.WebSocketInterface(url);
  }

  /** Connect and register. Resolves once connected; rejects with the error the `error` event
   * carries when registration fails for good. */
  setup({ jwt } = {}) {
    if (typeof jwt !== 'string' || !jwt) return Promise.reject(new TypeError('setup needs {jwt}: a JWT string'));
    if (this.#status !== ClientStatus.OFFLINE) {
      return Promise.reject(new Error('client is already set up: call destroy() first'));
    }
    this.#token = jwt;
    this.#forbiddenCount = 0;
    this.#pending = deferred();
    this.#instanceId = globalThis.crypto.randomUUID();
    this.#ua = new JsSIP.UA({
      sockets: [this._newSocket(`${this.#url}`)],
      uri: `sip:anonymous@${this.#domain}`,
      instance_id: this.#instanceId,
      register: true,
      register_expires: REQUESTED_EXPIRES,
      session_timers: true,
      // JsSIP takes whole seconds
      connection_recovery_min_interval: Math.max(1, Math.round(this.reconnectDelayMin / 1000)),
      connection_recovery_max_interval: Math.max(1, Math.round(this.reconnectDelayMax / 1000)),
    });
    this.#applyToken();
    this.#listen(this.#ua);
    this.#setStatus(ClientStatus.CONNECTING);
    this.#stopping = false;
    this.#ua.start();
    return this.#pending.promise;
  }

  /** Hang up every call, un-register, close the WebSocket and end offline. */
  async destroy() {
    clearTimeout(this.#timer);
    for (const incoming of this.#incoming.values()) incoming.reject();
    await Promise.all([...this.#calls].map((call) => call.disconnect()));
    const ua = this.#ua;
    this.#ua = null;
    if (ua) await this.#stop(ua, this.unregisterTimeout);
    this.#pending?.reject(new Error('client destroyed'));
    this.#setStatus(ClientStatus.OFFLINE);
  }

  /** Call out through the hub: the token's call flow runs with `params` as its variables (in
   * WebRTC-UserData). Returns the Call at once, in status connecting; throws when not connected. */
  startCall(params) {
    if (this.#status !== ClientStatus.CONNECTED) {
      throw new Error(`cannot start a call while the client is ${this.#status}`);
    }
    const call = new Call();
    const extraHeaders = [`WebRTC-Token: ${this.#token}`, `SDK-Version: ${SDK_VERSION}`];
    const userData = encodeUserData(params);
    if (userData) extraHeaders.push(`WebRTC-UserData: ${userData}`);
    const handlers = call._handlers();
    // The published client reports the time from the INVITE to the first 180/183, once.
    let sentAt = null;
    const { sending, progress } = handlers;
    handlers.sending = (event) => {
      sentAt = performance.now();
      sending(event);
    };
    handlers.progress = (event) => {
      if (event.originator === 'remote' && sentAt !== null) {
        this.#reportPostDialDelay(call.id, performance.now() - sentAt);
        sentAt = null;
      }
      progress(event);
    };
    this.#track(call);
    call._start();
    const session = this.#ua.call(`sip:${CALL_TARGET_USER}@${this.#domain}`, {
      extraHeaders,
      eventHandlers: handlers,
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: this.#turn },
    });
    call._attach(session);
    return call;
  }

  #reportPostDialDelay(callId, milliseconds) {
    const body = JSON.stringify({ clientPostDialDelay: milliseconds.toFixed(3) });
    try {
      this.#ua?.sendMessage(`sip:${CALL_TARGET_USER}@${this.#domain}`, body, {
        contentType: 'text/plain',
        extraHeaders: [`X-Call-Relates: ${callId}`],
      });
    } catch (error) {
      console.warn('post-dial delay not reported', error);
    }
  }

  #track(call) {
    this.#calls.add(call);
    call.ended.then(() => this.#calls.delete(call));
  }

  #listen(ua) {
    // With a registrationExpiring listener JsSIP leaves the refresh to us: the token comes first.
    ua.on('registrationExpiring', () => {});
    ua.on('registered', ({ response }) => this.#registered(response));
    ua.on('registrationFailed', ({ response }) => this.#refused(ua, response));
    ua.on('disconnected', () => this.#disconnected(ua));
    ua.on('newRTCSession', ({ originator, session, request }) => {
      if (originator === 'remote') this.#offered(session, request);
    });
  }

  #applyToken() {
    this.#ua.registrator().setExtraHeaders([
      `User-Details: ${userDetails()}`,
      `WebRTC-Token: ${this.#token}`,
      `SDK-Version: ${SDK_VERSION}`,
    ]);
  }

  #registered(response) {
    const contactUser = this.#ua?.contact?.uri?.user;
    const granted = grantedExpires(response, this.#instanceId, contactUser) ?? REQUESTED_EXPIRES;
    this.#turn = turnServers(response.body);
    this.#forbiddenCount = 0;
    this.#setStatus(ClientStatus.CONNECTED);
    this.#pending?.resolve();
    clearTimeout(this.#timer);
    const ua = this.#ua;
    this.#timer = setTimeout(async () => {
      await this.#fetchToken();
      if (this.#ua !== ua) return; // destroyed meanwhile
      this.#applyToken();
      ua.register();
    }, refreshDelay(granted) * 1000);
  }

  async #refused(ua, response) {
    clearTimeout(this.#timer);
    if (!response) return; // no answer: the socket's own recovery reconnects and registers again
    const code = response.status_code;
    console.warn(`REGISTER refused: ${code} ${response.reason_phrase}`);
    if (code === 403) {
      this.#forbiddenCount += 1;
      if (this.#forbiddenCount >= this.forbiddenAttempts) {
        this.#fail(ua, new ForbiddenError(response.reason_phrase));
        return;
      }
      this.#setStatus(ClientStatus.CONNECTING);
      await this.#stop(ua, 0);
      this.#timer = setTimeout(async () => {
        await this.#fetchToken();
        if (this.#ua !== ua) return;
        this.#applyToken();
        ua.start(); // a new WebSocket, the same Contact and Call-ID (it closes the old one first)
        this.#stopping = false;
      }, this.forbiddenRetryDelay);
    } else if (code === 406) {
      this.#fail(ua, new NotAcceptableError(response.reason_phrase));
    } else {
      this.#fail(ua, new InternalError('Could not register to WebRTC Server'));
    }
  }

  async #fetchToken() {
    try {
      const token = await this.#refreshToken();
      if (typeof token === 'string' && token) this.#token = token;
      else console.error('refreshToken() returned no JWT; keeping the previous token');
    } catch (error) {
      console.error('refreshToken() failed; keeping the previous token', error);
    }
  }

  #fail(ua, error) {
    this.#ua = null;
    this.#stop(ua, 0);
    this.#endCalls();
    this.#setStatus(ClientStatus.ERROR);
    this._emit('error', error);
    this.#pending?.reject(error);
    this.#pending = null;
    this.#setStatus(ClientStatus.OFFLINE);
  }

  /** Stop the UA (un-REGISTER, close the socket); resolves once the hub has answered the
   * un-REGISTER or the socket is closed, at most `timeout` ms (0: do not wait). */
  #stop(ua, timeout) {
    this.#stopping = true;
    const closed = new Promise((resolve) => {
      ua.once('unregistered', resolve);
      ua.once('disconnected', resolve);
      setTimeout(resolve, timeout);
    });
    ua.stop();
    return closed;
  }

  #disconnected(ua) {
    if (this.#stopping || this.#ua !== ua) return;
    console.warn(`connection to ${this.#url} lost; reconnecting`);
    clearTimeout(this.#timer);
    this.#endCalls();
    this.#setStatus(ClientStatus.CONNECTING);
  }

  #endCalls() {
    for (const incoming of this.#incoming.values()) incoming.reject();
    for (const call of this.#calls) call._lost();
  }

  #offered(session, request) {
    const call = new Call();
    call._bind(session, request.call_id);
    const incoming = new IncomingCall(session, request, call, {
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: this.#turn },
    });
    this.#incoming.set(incoming.id, incoming);
    this.#track(call);
    session.on('accepted', () => this.#incoming.delete(incoming.id));
    session.on('failed', () => {
      // The seed emits canceled on any failure of a call not answered: a CANCEL, a reject().
      if (this.#incoming.delete(incoming.id)) this._emit('canceled', incoming);
    });
    this._emit('incoming', incoming);
  }

  #setStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    this._emit('status', status);
  }
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  promise.catch(() => {}); // the caller's await sees it; nobody else needs to
  return { promise, resolve, reject };
}
