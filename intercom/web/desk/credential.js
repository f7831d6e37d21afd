// The phone's device credential (from pairing) and the hub's /desk/api/ endpoints it opens.
// The credential stays in this browser's localStorage; it never goes in a URL, only in the
// Authorization header of a same-origin request.

export const CREDENTIAL_KEY = 'intercom.credential';
export const IDENTITY_KEY = 'intercom.identity';

/** The hub answered 401: the credential is unknown or was revoked. */
export class Revoked extends Error {
  constructor() {
    super('This phone was removed from the intercom');
    this.name = 'Revoked';
  }
}

export function credential() {
  return localStorage.getItem(CREDENTIAL_KEY);
}

export function identity() {
  return localStorage.getItem(IDENTITY_KEY);
}

export function remember(paired) {
  localStorage.setItem(CREDENTIAL_KEY, paired.credential);
  localStorage.setItem(IDENTITY_KEY, paired.identity);
}

export function forget() {
  localStorage.removeItem(CREDENTIAL_KEY);
  localStorage.removeItem(IDENTITY_KEY);
}

/** The hub's first error message from its {"errors": [...]} envelope, or the status line. */
export async function problem(response) {
  try {
    const body = await response.json();
    return body.errors[0].message;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

/** A request to /desk/api/`path` (or to `path` itself when it is absolute, as a voicemail's url
 * is) with the credential; throws Revoked on 401, Error on any other refusal. */
export async function callApi(path, options = {}) {
  const response = await fetch(path.startsWith('/') ? path : `/desk/api/${path}`, {
    ...options,
    cache: 'no-store',
    headers: { ...(options.headers || {}), Authorization: `Bearer ${credential()}` },
  });
  if (response.status === 401) throw new Revoked();
  if (!response.ok) throw new Error(await problem(response));
  return response;
}

/** The SDK's refreshToken: a short-lived JWT for this phone's identity. */
export async function refreshToken() {
  const response = await callApi('token', { method: 'POST' });
  const { jwt } = await response.json();
  return jwt;
}
