// The headers the published client adds to JsSIP's requests (PROTOCOL.md sections 2 and 3), and
// what the hub adds to its own (docs/protocol.md).

/** What `SDK-Version` says: this SDK and its version (the seed's says its build commit). */
export const SDK_VERSION = 'intercom-js/0.1.0';

/** `WebRTC-UserData`: base64 of `key=value&...`, each part encodeURIComponent-encoded; `null`
 * (no header) for no params. Values go through String(), as the seed's do. */
export function encodeUserData(params) {
  if (params === undefined || params === null) return null;
  const pairs = Object.entries(params);
  if (pairs.length === 0) return null;
  const query = pairs
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`)
    .join('&');
  return base64(query);
}

/** `User-Details`: base64 JSON shaped as platform.js describes the browser for the seed. */
export function userDetails(nav = globalThis.navigator) {
  const agent = nav?.userAgent ?? '';
  const chrome = /(Chrome|Chromium|Firefox|Version)\/([\d.]+)/.exec(agent);
  const details = {
    browser: {
      name: browserName(agent),
      version: chrome ? chrome[2] : null,
      layout: /AppleWebKit/.test(agent) ? (/Chrome/.test(agent) ? 'Blink' : 'WebKit') : /Gecko\//.test(agent) ? 'Gecko' : null,
      manufacturer: null,
      product: null,
    },
  };
  const family = osFamily(agent);
  if (family) {
    details.os = {
      architecture: /x86_64|x64|Win64|aarch64|arm64/i.test(agent) ? 64 : 32,
      family,
      version: null,
      logicalProcessors: nav?.hardwareConcurrency ?? null,
    };
  }
  return base64(JSON.stringify(details));
}

function browserName(agent) {
  if (/Edg\//.test(agent)) return 'Microsoft Edge';
  if (/Chrome\//.test(agent)) return 'Chrome';
  if (/Firefox\//.test(agent)) return 'Firefox';
  if (/Safari\//.test(agent)) return 'Safari';
  return 'Unknown';
}

function osFamily(agent) {
  if (/Android/.test(agent)) return 'Android';
  if (/iPhone|iPad/.test(agent)) return 'iOS';
  if (/Mac OS X/.test(agent)) return 'OS X';
  if (/Windows/.test(agent)) return 'Windows';
  if (/Linux/.test(agent)) return 'Linux';
  return null;
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const ASSERTED = /^\s*<sip:([A-Za-z0-9_]{1,30})@[^>]+>\s*$/;

/** Who the hub asserts sent a request or answer (`P-Asserted-Identity`), or `null`: none, several,
 * or not one the hub writes. The same rule as the Python SDK's `asserted_identity`. */
export function assertedIdentity(message) {
  const values = message?.getHeaders?.('P-Asserted-Identity') ?? [];
  if (values.length !== 1) return null;
  const match = ASSERTED.exec(values[0]);
  return match ? match[1] : null;
}
