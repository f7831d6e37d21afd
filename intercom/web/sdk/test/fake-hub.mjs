// What the unit tests run the SDK against: a JsSIP Socket that hands every frame JsSIP writes to
// the test (a "hub" the test scripts), and just enough WebRTC for JsSIP to make an offer or an
// answer in node. Nothing here touches a network.

import { MessageBirdClient } from '../src/index.js';

export const HOST = '127.0.0.1:8443';

/** One SIP message as text, taken apart: `{firstLine, headers: [[name, value]], body}`. */
export function parse(text) {
  const [head, ...rest] = text.split('\r\n\r\n');
  const [firstLine, ...lines] = head.split('\r\n');
  const headers = lines.map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
  const message = { text, firstLine, headers, body: rest.join('\r\n\r\n') };
  message.get = (name) => headers.find(([each]) => each.toLowerCase() === name.toLowerCase())?.[1];
  message.method = firstLine.startsWith('SIP/2.0') ? null : firstLine.split(' ')[0];
  message.status = message.method ? null : Number(firstLine.split(' ')[1]);
  return message;
}

/** The hub's answer to `request`: its Via, From, Call-ID and CSeq, a To tag, then `headers`. */
export function answer(request, status, reason, headers = [], body = '') {
  const to = request.get('To');
  const lines = [
    `SIP/2.0 ${status} ${reason}`,
    ...request.headers.filter(([name]) => name === 'Via').map(([, value]) => `Via: ${value}`),
    `From: ${request.get('From')}`,
    `To: ${to}${status > 100 && !to.includes('tag=') ? ';tag=hubtag1' : ''}`,
    `Call-ID: ${request.get('Call-ID')}`,
    `CSeq: ${request.get('CSeq')}`,
    ...headers,
    `Content-Length: ${new TextEncoder().encode(body).length}`,
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** 200 to a REGISTER, granting `expires` to the Contact it names, as the hub answers. */
export function registered(request, expires = 60) {
  const contact = request.get('Contact').replace(/;expires=\d+/, '');
  return answer(request, 200, 'OK', [`Contact: ${contact};expires=${expires}`, 'Content-Type: application/json'], '{"zone":"local"}');
}

/** A JsSIP Socket with no network: frames the SDK sends go to `hub.received`, the test answers. */
class FakeSocket {
  constructor(hub) {
    this.hub = hub;
    this.url = `wss://${HOST}`;
    this.via_transport = 'WSS';
    this.sip_uri = `sip:${HOST};transport=ws`;
    this.connected = false;
  }

  connect() {
    this.hub.connects += 1;
    this.connected = true;
    queueMicrotask(() => this.onconnect());
  }

  /** As JsSIP's WebSocketInterface: JsSIP's transport reports the close it asked for itself. */
  disconnect() {
    this.connected = false;
  }

  send(text) {
    if (!this.connected) return false;
    this.hub.take(parse(text));
    return true;
  }

  isConnected() {
    return this.connected;
  }

  isConnecting() {
    return false;
  }

  /** The hub drops the connection (a network failure, not asked for). */
  drop() {
    this.connected = false;
    this.ondisconnect({ socket: this, error: true, code: 1006, reason: 'gone' });
  }
}

/** The hub side of a test: what the SDK sent, and a way to answer or to wait for the next one. */
export class FakeHub {
  constructor() {
    this.received = [];
    this.connects = 0;
    this.socket = new FakeSocket(this);
    this.waiters = [];
    /** Called with each request the SDK sends; returns the answer text, or nothing. */
    this.respond = () => undefined;
  }

  take(message) {
    this.received.push(message);
    const reply = this.respond(message);
    if (reply) queueMicrotask(() => this.send(reply));
    for (const waiter of [...this.waiters]) waiter(message);
  }

  send(text) {
    this.socket.ondata(text);
  }

  /** The first (or next) message that `test` accepts, within `timeout` ms. */
  next(test, timeout = 2000) {
    const seen = this.received.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no such SIP message in time')), timeout);
      const waiter = (message) => {
        if (!test(message)) return;
        clearTimeout(timer);
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(message);
      };
      this.waiters.push(waiter);
    });
  }

  sent(method) {
    return this.received.filter((message) => message.method === method);
  }
}

/** A client wired to `hub` and recording its events; short retry delays for tests. */
export function clientOn(hub, refreshToken = async () => 'token-fresh') {
  class TestClient extends MessageBirdClient {
    _newSocket() {
      return hub.socket;
    }
  }
  const client = new TestClient({ refreshToken, host: `wss://${HOST}` });
  client.forbiddenRetryDelay = 10;
  client.events = [];
  for (const event of ['status', 'error', 'incoming', 'canceled']) {
    client.on(event, (value) => client.events.push([event, value]));
  }
  return client;
}

/** Resolves when `emitter` emits `event` (with a value that `test` accepts), within `timeout` ms. */
export function once(emitter, event, test = () => true, timeout = 2000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' in time`)), timeout);
    const handler = (...args) => {
      if (!test(...args)) return;
      clearTimeout(timer);
      emitter.off(event, handler);
      resolve(args[0]);
    };
    emitter.on(event, handler);
  });
}

const OFFER_SDP = [
  'v=0',
  'o=- 1 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 127.0.0.1',
  'a=rtpmap:111 opus/48000/2',
  'a=sendrecv',
  '',
].join('\r\n');
export { OFFER_SDP };

class FakeTrack {
  constructor() {
    this.kind = 'audio';
    this.enabled = true;
    this.stopped = false;
  }

  stop() {
    this.stopped = true;
  }
}

class FakeStream {
  constructor(tracks = [new FakeTrack()]) {
    this.tracks = tracks;
  }

  getTracks() {
    return this.tracks;
  }

  getAudioTracks() {
    return this.tracks;
  }

  getVideoTracks() {
    return [];
  }
}

/** An RTCPeerConnection that makes a fixed SDP and is always done gathering. */
class FakePeerConnection extends EventTarget {
  constructor() {
    super();
    this.senders = [];
    this.localDescription = null;
    this.remoteDescription = null;
    this.iceGatheringState = 'complete';
    this.signalingState = 'stable';
    this.iceConnectionState = 'new';
  }

  addTrack(track) {
    const sender = {
      track,
      replaceTrack: async (next) => {
        sender.track = next;
      },
    };
    this.senders.push(sender);
    return sender;
  }

  getSenders() {
    return this.senders;
  }

  getReceivers() {
    return [];
  }

  async createOffer() {
    return { type: 'offer', sdp: OFFER_SDP };
  }

  async createAnswer() {
    return { type: 'answer', sdp: OFFER_SDP };
  }

  async setLocalDescription(description) {
    this.localDescription = description;
  }

  async setRemoteDescription(description) {
    this.remoteDescription = description;
  }

  close() {
    this.signalingState = 'closed';
  }
}

/** Install the fake WebRTC globals JsSIP uses (node has none); getUserMedia counts its calls. */
export function installFakeWebRTC() {
  const media = { opened: [] };
  globalThis.window = globalThis; // JsSIP looks some of these up on window
  globalThis.RTCPeerConnection = FakePeerConnection;
  globalThis.MediaStream = FakeStream;
  globalThis.RTCSessionDescription = class {
    constructor({ type, sdp }) {
      this.type = type;
      this.sdp = sdp;
    }
  };
  Object.defineProperty(globalThis, 'navigator', {
    configurable: true,
    value: {
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
      hardwareConcurrency: 2,
      mediaDevices: {
        getUserMedia: async (constraints) => {
          media.opened.push(constraints);
          return new FakeStream();
        },
      },
    },
  });
  return media;
}
