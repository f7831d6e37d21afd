// MessageBird's official Node SDK (npm `messagebird`), as it ships, driven by tests/hub/sdk.
//
//   node messagebird_node.mjs --hub 127.0.0.1:8443
//
// One request a line on stdin: {"key": "<access key>", "method": "callflows.create", "args": [...]};
// one answer a line on stdout: {"result": ...} or {"error": {"message", "statusCode", "errors"}}.
// The SDK calls https.request for hosts of its own (voice.messagebird.com, ...) with no way to
// change them: this module's https.request, the one the SDK uses, sends them to --hub instead.
// That is the only change. TLS stays verified: NODE_EXTRA_CA_CERTS names the tests' certificate.
// Keys come on stdin, never on the command line.

import https from 'node:https';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

import messagebird from 'messagebird';

const SDK_HOSTS = new Set(['rest.messagebird.com', 'voice.messagebird.com', 'conversations.messagebird.com']);

const { values } = parseArgs({ options: { hub: { type: 'string' } } });
const hub = new URL(`https://${values.hub}`);
if (!hub.hostname.startsWith('127.')) {
  throw new Error(`--hub ${values.hub}: the tests talk to loopback only`);
}

const sendTo = https.request;
https.request = (options, ...rest) => {
  if (!SDK_HOSTS.has(options.hostname)) {
    throw new Error(`the SDK asked for ${options.hostname}, none of its own hosts: nothing sent`);
  }
  return sendTo.call(https, { ...options, hostname: hub.hostname, port: Number(hub.port) }, ...rest);
};

const clients = new Map();
function clientFor(key) {
  if (!clients.has(key)) clients.set(key, messagebird.initClient(key));
  return clients.get(key);
}

function call({ key, method, args }) {
  const names = method.split('.');
  const owner = names.slice(0, -1).reduce((object, name) => object[name], clientFor(key));
  const run = owner[names.at(-1)];
  if (typeof run !== 'function') throw new Error(`the SDK has no method ${method}`);
  return new Promise((resolve) => {
    run.call(owner, ...args, (error, result) => {
      resolve(error ? { error: { message: error.message, statusCode: error.statusCode ?? null, errors: error.errors ?? null } } : { result });
    });
  });
}

// One request at a time, answered in order: the tests wait for each answer before the next.
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  let answer;
  try {
    answer = await call(JSON.parse(line));
  } catch (error) {
    answer = { error: { message: `harness: ${error.message}`, statusCode: null, errors: null } };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
