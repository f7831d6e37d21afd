// Calls through a fake hub: the INVITE as the published client sends it, the statuses in order,
// DTMF (validation, body, pacing), the unlock request, mute, hang-up; and an incoming call's
// 100/180, accept, reject (480) and CANCEL, each ending as the seed's events say.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FakeHub, HOST, OFFER_SDP, answer, clientOn, installFakeWebRTC, once, parse, registered } from './fake-hub.mjs';
import { UNLOCK_CONTENT_TYPE } from '../src/call.js';

const media = installFakeWebRTC();
const VECTORS = new URL('../../../../../shared/vectors/', import.meta.url);
const names = (message) => message.headers.map(([name]) => name);
const HUB_CONTACT = `<sip:hub@${HOST};transport=ws>`;

async function connected(respond = () => undefined) {
  const hub = new FakeHub();
  hub.respond = (request) => (request.method === 'REGISTER' ? registered(request) : respond(request));
  const client = clientOn(hub);
  await client.setup({ jwt: 'token-1' });
  return { hub, client };
}

function statuses(call) {
  const seen = [];
  call.on('status', (status) => seen.push(status));
  return seen;
}

/** Answer the INVITE with 180 then 200 (asserting `door` as the callee). */
async function answered(hub, call) {
  const invite = await hub.next((message) => message.method === 'INVITE');
  hub.send(answer(invite, 180, 'Ringing', [`Contact: ${HUB_CONTACT}`]));
  const confirmed = once(call, 'status', (status) => status === 'confirmed');
  hub.send(
    answer(
      invite,
      200,
      'OK',
      [`Contact: ${HUB_CONTACT}`, 'P-Asserted-Identity: <sip:door@hub>', 'Content-Type: application/sdp'],
      OFFER_SDP,
    ),
  );
  await confirmed;
  return invite;
}

test('startCall sends the published INVITE: the token, the params in WebRTC-UserData, its header order', async () => {
  const { hub, client } = await connected();
  const call = client.startCall({ foo: 'bar' });
  const invite = await hub.next((message) => message.method === 'INVITE');
  const expected = parse(readFileSync(new URL('invite-with-userdata.sip', VECTORS), 'utf8'));
  assert.deepEqual(names(invite), names(expected));
  assert.equal(invite.firstLine, `INVITE sip:00000@${HOST} SIP/2.0`);
  assert.equal(invite.get('To'), `<sip:00000@${HOST}>`);
  assert.equal(invite.get('WebRTC-Token'), 'token-1');
  assert.equal(invite.get('WebRTC-UserData'), 'Zm9vPWJhcg==');
  assert.match(invite.get('Contact'), /^<sip:[a-z0-9]{8}@[a-z0-9]{12}\.invalid;transport=ws;ob>$/);
  for (const same of ['Content-Type', 'Session-Expires', 'Allow', 'Supported', 'Max-Forwards']) {
    assert.equal(invite.get(same), expected.get(same), same);
  }
  assert.equal(invite.body, OFFER_SDP);
  assert.deepEqual(media.opened.at(-1), { audio: true, video: false });
  assert.equal(call.status, 'connecting');
  await call.disconnect();
  await client.destroy();
});

test('no params, no WebRTC-UserData; values go through String() and encodeURIComponent', async () => {
  const { hub, client } = await connected();
  client.startCall({});
  client.startCall({ to: 'door one', n: 2, ok: true });
  const [first, second] = await Promise.all([
    hub.next((message) => message.method === 'INVITE'),
    hub.next((message) => message.method === 'INVITE' && message.get('WebRTC-UserData')),
  ]);
  assert.equal(first.get('WebRTC-UserData'), undefined);
  assert.equal(atob(second.get('WebRTC-UserData')), 'to=door%20one&n=2&ok=true');
  await client.destroy();
});

test('a call goes connecting, ringing, accepted, confirmed, ended; the 180 is reported by MESSAGE', async () => {
  const { hub, client } = await connected((request) =>
    ['BYE', 'MESSAGE'].includes(request.method) ? answer(request, 200, 'OK') : undefined,
  );
  const call = client.startCall();
  const seen = statuses(call);
  assert.equal(call.status, 'connecting');
  const invite = await answered(hub, call);
  assert.equal(call.remoteIdentity, 'door');
  assert.equal(call.id, invite.get('Call-ID'));
  const report = await hub.next((message) => message.method === 'MESSAGE');
  assert.equal(report.get('X-Call-Relates'), invite.get('Call-ID'));
  assert.equal(report.get('Content-Type'), 'text/plain');
  assert.match(JSON.parse(report.body).clientPostDialDelay, /^\d+\.\d{3}$/);
  assert.equal(report.get('WebRTC-Token'), undefined);
  await call.disconnect();
  const bye = hub.sent('BYE')[0];
  assert.equal(bye.get('Call-ID'), invite.get('Call-ID'));
  assert.deepEqual(seen, ['connecting', 'ringing', 'accepted', 'confirmed', 'ended']);
  assert.equal(call.status, 'ended');
  await client.destroy();
});

test('a refused call: failed and one error with the raw answer, code 500; no more statuses', async () => {
  const { hub, client } = await connected();
  const call = client.startCall();
  const seen = statuses(call);
  const errors = [];
  call.on('error', (error) => errors.push(error));
  const invite = await hub.next((message) => message.method === 'INVITE');
  hub.send(answer(invite, 486, 'Busy Here'));
  await call.ended;
  assert.deepEqual(seen, ['connecting', 'failed']);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 500);
  assert.match(errors[0].message, /^RTC Session failed: SIP\/2\.0 486 Busy Here\r\n/);
  await client.destroy();
});

test('sendDigits: only 0-9*# and only once answered; one INFO per digit, 600 ms apart', async () => {
  const { hub, client } = await connected((request) => (request.method === 'INFO' ? answer(request, 200, 'OK') : undefined));
  const call = client.startCall();
  for (const bad of ['12a', '', ' 1', '1,2', 5, null, 'A']) {
    assert.throws(() => call.sendDigits(bad), TypeError, String(bad));
  }
  assert.throws(() => call.sendDigits('1'), /once the call is answered/);
  await answered(hub, call);
  call.sendDigits('1#');
  const first = await hub.next((message) => message.method === 'INFO');
  const firstAt = performance.now();
  const second = await hub.next((message) => message.method === 'INFO' && message !== first, 3000);
  const gap = performance.now() - firstAt;
  const expected = parse(readFileSync(new URL('info-dtmf.sip', VECTORS), 'utf8'));
  assert.deepEqual(names(first), names(expected));
  assert.equal(first.get('Content-Type'), 'application/dtmf-relay');
  assert.equal(first.body, 'Signal=1\r\nDuration=100');
  assert.equal(second.body, 'Signal=#\r\nDuration=100');
  assert.ok(gap >= 500, `digits ${gap} ms apart`);
  assert.equal(hub.sent('INFO').length, 2);
  await client.destroy();
});

test('requestUnlock: one INFO of the unlock type; true on 200, false on 403; refused before the answer', async () => {
  const answers = [200, 403];
  const { hub, client } = await connected((request) => {
    if (request.method !== 'INFO') return undefined;
    const status = answers.shift();
    return answer(request, status, status === 200 ? 'OK' : 'Forbidden (not bridged)');
  });
  const call = client.startCall();
  await assert.rejects(call.requestUnlock(), /once the call is answered/);
  await answered(hub, call);
  assert.equal(await call.requestUnlock(), true);
  assert.equal(await call.requestUnlock(), false);
  const infos = hub.sent('INFO');
  assert.equal(infos.length, 2);
  assert.equal(infos[0].get('Content-Type'), UNLOCK_CONTENT_TYPE);
  assert.equal(infos[0].body, '');
  await client.destroy();
});

test('mute: the muted event once per change, the track disabled, nothing on SIP', async () => {
  const { hub, client } = await connected();
  const call = client.startCall();
  await answered(hub, call);
  const events = [];
  call.on('muted', (muted) => events.push(muted));
  const sent = hub.received.length;
  call.mute(true);
  call.mute(true);
  assert.equal(call.isMuted, true);
  call.mute(false);
  assert.deepEqual(events, [true, false]);
  assert.equal(hub.received.length, sent);
  await client.destroy();
});

test('setInputSource replaces the track (kept muted); bad constraints are a TypeError', async () => {
  const { hub, client } = await connected();
  const call = client.startCall();
  await answered(hub, call);
  call.mute(true);
  await assert.rejects(call.setInputSource({ audio: {} }), TypeError);
  await assert.rejects(call.setInputSource('mic'), TypeError);
  await call.setInputSource({ audio: { deviceId: 'usb-mic' } });
  assert.deepEqual(media.opened.at(-1), { audio: { deviceId: { exact: 'usb-mic' } }, video: false });
  await assert.rejects(call.setOutputSource('speaker'), /setSinkId/); // no <audio> in node
  await client.destroy();
});

/** An INVITE from the hub to the client's Contact, as the hub rings a desk. */
function offer(contact, callId = 'incoming-1') {
  const user = /<sip:([^@]+)@([^;>]+)/.exec(contact);
  return [
    `INVITE sip:${user[1]}@${user[2]};transport=ws SIP/2.0`,
    `Via: SIP/2.0/WSS ${HOST};branch=z9hG4bK-${callId}`,
    'Max-Forwards: 70',
    `From: "Front door" <sip:door@${HOST}>;tag=hubfrom`,
    `To: <sip:anonymous@${HOST}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: ${HUB_CONTACT}`,
    'P-Asserted-Identity: <sip:door@hub>',
    'Content-Type: application/sdp',
    `Content-Length: ${OFFER_SDP.length}`,
    '',
    OFFER_SDP,
  ].join('\r\n');
}

async function ringing(callId) {
  const { hub, client } = await connected();
  const incoming = once(client, 'incoming');
  hub.send(offer(hub.sent('REGISTER')[0].get('Contact'), callId));
  const call = await incoming;
  await hub.next((message) => message.status === 180);
  return { hub, client, incoming: call };
}

test('an incoming call: 100 then 180; displayName and remoteIdentity; accept gives 200 and a Call', async () => {
  const { hub, client, incoming } = await ringing('in-accept');
  const [trying, ring] = hub.received.filter((message) => message.status !== null);
  assert.equal(trying.status, 100);
  assert.equal(trying.get('Supported'), 'timer,ice,replaces,outbound');
  assert.equal(ring.status, 180);
  assert.equal(incoming.displayName, 'Front door');
  assert.equal(incoming.remoteIdentity, 'door');
  assert.equal(incoming.id, 'in-accept');
  const call = incoming.accept();
  const seen = statuses(call);
  const ok = await hub.next((message) => message.status === 200 && message.get('CSeq') === '1 INVITE');
  assert.match(ok.get('Session-Expires'), /^90;refresher=uas$/);
  assert.equal(ok.get('WebRTC-Token'), undefined);
  assert.equal(call.remoteIdentity, 'door');
  const ack = [
    `ACK ${/<([^>]+)>/.exec(ok.get('Contact'))[1]} SIP/2.0`,
    `Via: SIP/2.0/WSS ${HOST};branch=z9hG4bK-ack`,
    'Max-Forwards: 70',
    `From: ${ok.get('From')}`,
    `To: ${ok.get('To')}`,
    'Call-ID: in-accept',
    'CSeq: 1 ACK',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const confirmed = once(call, 'status', (status) => status === 'confirmed');
  hub.send(ack);
  await confirmed;
  assert.deepEqual(seen, ['accepted', 'confirmed']);
  assert.deepEqual(client.events.filter(([event]) => event === 'canceled'), []);
  await client.destroy();
});

test('reject: 480, then canceled; a CANCEL: 200 and 487, then canceled', async () => {
  const rejected = await ringing('in-reject');
  const canceled = once(rejected.client, 'canceled');
  rejected.incoming.reject();
  assert.equal(await canceled, rejected.incoming);
  assert.ok(rejected.hub.received.some((message) => message.status === 480));
  assert.throws(() => rejected.incoming.accept(), /no longer ringing/);
  await rejected.client.destroy();

  const cancelled = await ringing('in-cancel');
  const gone = once(cancelled.client, 'canceled');
  const invite = cancelled.hub.received.find((message) => message.status === 100);
  cancelled.hub.send(
    [
      `CANCEL ${invite.get('To').replace(/^<|>.*$/g, '')} SIP/2.0`,
      `Via: ${invite.get('Via')}`,
      'Max-Forwards: 70',
      `From: ${invite.get('From')}`,
      `To: <sip:anonymous@${HOST}>`,
      'Call-ID: in-cancel',
      'CSeq: 1 CANCEL',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  assert.equal(await gone, cancelled.incoming);
  const statuses = cancelled.hub.received.filter((message) => message.status !== null).map((message) => message.status);
  assert.ok(statuses.includes(487), `answers: ${statuses}`);
  assert.ok(cancelled.hub.received.some((message) => message.status === 200 && message.get('CSeq') === '1 CANCEL'));
  await cancelled.client.destroy();
});

test('DTMF and an unlock request from the far end: the digits and unlock events, with who sent them', async () => {
  const { hub, client } = await connected((request) => (request.method === 'BYE' ? answer(request, 200, 'OK') : undefined));
  const call = client.startCall();
  const invite = await answered(hub, call);
  const ok = hub.sent('ACK')[0];
  const info = (cseq, type, body, identity) =>
    [
      `INFO ${/<([^>]+)>/.exec(invite.get('Contact'))[1]} SIP/2.0`,
      `Via: SIP/2.0/WSS ${HOST};branch=z9hG4bK-info${cseq}`,
      'Max-Forwards: 70',
      `From: ${ok.get('To')}`,
      `To: ${ok.get('From')}`,
      `Call-ID: ${invite.get('Call-ID')}`,
      `CSeq: ${cseq} INFO`,
      ...(identity ? [`P-Asserted-Identity: <sip:${identity}@hub>`] : []),
      `Content-Type: ${type}`,
      `Content-Length: ${body.length}`,
      '',
      body,
    ].join('\r\n');
  const digit = new Promise((resolve) => call.on('digits', (key, who) => resolve([key, who])));
  hub.send(info(10, 'application/dtmf-relay', 'Signal=5\r\nDuration=100', 'door'));
  assert.deepEqual(await digit, ['5', 'door']);
  const unlock = new Promise((resolve) => call.on('unlock', resolve));
  hub.send(info(11, UNLOCK_CONTENT_TYPE, '', null));
  assert.equal(await unlock, null);
  await client.destroy();
});
