// The client's registration as the published client does it: the headers, the status order, the
// refresh with a new token, and the seed's error rules (403 retried 5 times, 406 and 500 not).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FakeHub, HOST, answer, clientOn, installFakeWebRTC, once, parse, registered } from './fake-hub.mjs';
import { ForbiddenError, InternalError, NotAcceptableError, SDK_VERSION } from '../src/index.js';
import { hubAddress, refreshDelay } from '../src/client.js';

installFakeWebRTC();
const VECTORS = new URL('../../../../../shared/vectors/', import.meta.url);

function vector(name) {
  return parse(readFileSync(new URL(name, VECTORS), 'utf8'));
}

const names = (message) => message.headers.map(([name]) => name);

test('the first REGISTER has the published client headers, in its order', async () => {
  const hub = new FakeHub();
  hub.respond = (request) => registered(request);
  const client = clientOn(hub, async () => 'token-2');
  await client.setup({ jwt: 'token-1' });
  const [register] = hub.sent('REGISTER');
  const expected = vector('register-first.sip');
  assert.deepEqual(names(register), names(expected));
  assert.equal(register.firstLine, `REGISTER sip:${HOST} SIP/2.0`);
  assert.equal(register.get('To'), `<sip:anonymous@${HOST}>`);
  assert.match(register.get('From'), new RegExp(`^<sip:anonymous@${HOST.replace(/\./g, '\\.')}>;tag=\\w+$`));
  assert.match(register.get('Via'), /^SIP\/2\.0\/WSS [a-z0-9]{12}\.invalid;branch=z9hG4bK\d+$/);
  assert.equal(register.get('CSeq'), '1 REGISTER');
  assert.equal(register.get('WebRTC-Token'), 'token-1');
  assert.equal(register.get('SDK-Version'), SDK_VERSION);
  assert.equal(register.get('Expires'), '60');
  assert.match(
    register.get('Contact'),
    /^<sip:[a-z0-9]{8}@[a-z0-9]{12}\.invalid;transport=ws>;\+sip\.ice;reg-id=1;\+sip\.instance="<urn:uuid:[0-9a-f-]{36}>";expires=60$/,
  );
  for (const same of ['Max-Forwards', 'Allow', 'Supported', 'User-Agent']) {
    assert.equal(register.get(same), expected.get(same), same);
  }
  const details = JSON.parse(atob(register.get('User-Details')));
  assert.deepEqual(Object.keys(details.browser), Object.keys(JSON.parse(atob(expected.get('User-Details'))).browser));
  assert.equal(details.browser.name, 'Chrome');
  assert.equal(details.os.family, 'Linux');
  assert.deepEqual(client.events, [['status', 'connecting'], ['status', 'connected']]);
  await client.destroy();
});

test('re-REGISTER before expiry with the token refreshToken() gives, then un-REGISTER on destroy', async () => {
  const hub = new FakeHub();
  hub.respond = (request) => registered(request, 2); // refreshed at 1 s (half-way for short grants)
  let tokens = 0;
  const client = clientOn(hub, async () => `token-${++tokens + 1}`);
  await client.setup({ jwt: 'token-1' });
  const refresh = await hub.next((message) => message.method === 'REGISTER' && message.get('CSeq') === '2 REGISTER', 3000);
  const [first] = hub.sent('REGISTER');
  assert.equal(refresh.get('WebRTC-Token'), 'token-2');
  assert.equal(refresh.get('Call-ID'), first.get('Call-ID'));
  assert.notEqual(refresh.get('From'), first.get('From'));
  assert.equal(refresh.get('Contact').replace(/;expires=\d+$/, ''), first.get('Contact').replace(/;expires=\d+$/, ''));
  assert.deepEqual(names(refresh), names(vector('register-refresh.sip')));
  assert.equal(hub.connects, 1);
  await client.destroy();
  const last = hub.sent('REGISTER').at(-1);
  assert.equal(last.get('Expires'), '0');
  assert.match(last.get('Contact'), /;expires=0$/);
  assert.equal(last.get('WebRTC-Token'), 'token-2');
  assert.deepEqual(client.events.map(([, status]) => status), ['connecting', 'connected', 'offline']);
});

test('403: five REGISTERs on five sockets, each retry with a fresh token, then error and offline', async () => {
  const hub = new FakeHub();
  hub.respond = (request) => answer(request, 403, 'Forbidden (token expired)');
  let tokens = 0;
  const client = clientOn(hub, async () => `token-${++tokens + 1}`);
  await assert.rejects(client.setup({ jwt: 'token-1' }), (error) => error instanceof ForbiddenError);
  const registers = hub.sent('REGISTER');
  assert.equal(registers.length, 5);
  assert.equal(hub.connects, 5);
  assert.deepEqual(
    registers.map((each) => each.get('WebRTC-Token')),
    ['token-1', 'token-2', 'token-3', 'token-4', 'token-5'],
  );
  assert.equal(new Set(registers.map((each) => each.get('Call-ID'))).size, 1);
  assert.equal(new Set(registers.map((each) => each.get('Contact'))).size, 1);
  assert.deepEqual(registers.map((each) => each.get('CSeq')), ['1', '2', '3', '4', '5'].map((n) => `${n} REGISTER`));
  const error = client.events.find(([event]) => event === 'error')[1];
  assert.equal(error.code, 403);
  assert.equal(error.message, 'Forbidden (token expired)');
  assert.deepEqual(
    client.events.map(([event, value]) => (event === 'status' ? value : event)),
    ['connecting', 'error', 'error', 'offline'],
  );
});

test('406: NotAcceptableError at once, no retry', async () => {
  const hub = new FakeHub();
  hub.respond = (request) => answer(request, 406, 'Not Acceptable (unknown identity)');
  const client = clientOn(hub);
  const error = await client.setup({ jwt: 'token-1' }).catch((caught) => caught);
  assert.ok(error instanceof NotAcceptableError);
  assert.equal(error.code, 406);
  assert.equal(error.message, 'Not Acceptable (unknown identity)');
  assert.equal(hub.sent('REGISTER').length, 1);
  assert.equal(client.status, 'offline');
});

test('500 (and any other final error): InternalError "Could not register to WebRTC Server"', async () => {
  const hub = new FakeHub();
  hub.respond = (request) => answer(request, 500, 'Server Internal Error');
  const client = clientOn(hub);
  const error = await client.setup({ jwt: 'token-1' }).catch((caught) => caught);
  assert.ok(error instanceof InternalError);
  assert.equal(error.code, 500);
  assert.equal(error.message, 'Could not register to WebRTC Server');
  assert.deepEqual(client.events.filter(([event]) => event === 'status').map(([, s]) => s), ['connecting', 'error', 'offline']);
  assert.equal(hub.sent('REGISTER').length, 1);
});

test('a lost connection: connecting again, then connected once the new REGISTER is answered', async () => {
  const hub = new FakeHub();
  hub.respond = (request) => registered(request);
  const client = clientOn(hub);
  client.reconnectDelayMin = 1000; // JsSIP's least: it waits 1 or 2 of it before reconnecting
  await client.setup({ jwt: 'token-1' });
  const again = once(client, 'status', (status) => status === 'connected', 5000);
  hub.socket.drop();
  assert.equal(client.status, 'connecting');
  await again;
  assert.equal(hub.sent('REGISTER').length, 2);
  await client.destroy();
});

test('bad input: no refreshToken, a bad host, setup without a jwt, a call while offline', async () => {
  assert.throws(() => clientOn.call(null, new FakeHub(), 'not a function'), TypeError);
  assert.throws(() => hubAddress('https://hub/path'), TypeError);
  assert.throws(() => hubAddress(undefined, undefined), /outside a page/);
  assert.deepEqual(hubAddress('hub.local:8443'), { url: 'wss://hub.local:8443', domain: 'hub.local:8443' });
  assert.deepEqual(hubAddress(undefined, { host: 'hub:9443' }), { url: 'wss://hub:9443', domain: 'hub:9443' });
  assert.deepEqual(hubAddress('ws://127.0.0.1:8080/'), { url: 'ws://127.0.0.1:8080', domain: '127.0.0.1:8080' });
  const client = clientOn(new FakeHub());
  await assert.rejects(client.setup({}), TypeError);
  assert.throws(() => client.startCall({}), /while the client is offline/);
  assert.equal(client.status, 'offline');
});

test('the refresh timing follows JsSIP: 5 s early for short grants, half-way at the shortest', () => {
  assert.equal(refreshDelay(60), 55);
  assert.equal(refreshDelay(6), 3);
  assert.equal(refreshDelay(2), 1);
  assert.equal(refreshDelay(600, () => 0), 300);
  assert.equal(refreshDelay(600, () => 1), 568);
});
