// /desk/pair#code=...: trade the one-time code (in the fragment, so it never reaches a log) for
// this browser's credential, keep it, and go to the desk.
import { problem, remember } from './credential.js';
import { $, showView } from './ui.js';

/** A name for this browser the hub lists (`intercom web list`), from what it says about itself. */
function deviceName() {
  const platform = navigator.userAgentData?.platform || navigator.platform || 'browser';
  return `${platform} browser`.slice(0, 60);
}

export async function pair() {
  showView('pairing');
  const code = new URLSearchParams(location.hash.slice(1)).get('code');
  history.replaceState(null, '', location.pathname); // the code is spent either way: out of sight
  if (!code) {
    $('pairing-result').textContent = 'This link has no pairing code. Ask for a new link.';
    return;
  }
  const response = await fetch('/desk/api/pair', {
    method: 'POST',
    cache: 'no-store',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ code, device: deviceName() }),
  });
  if (response.status === 201) {
    remember(await response.json());
    location.replace('/desk/');
    return;
  }
  const why = response.status === 410 ? 'This link was used already or has expired.' : await problem(response);
  $('pairing-result').textContent = `Pairing failed: ${why} Ask for a new link (intercom web add).`;
  $('pairing-result').dataset.failed = String(response.status);
}
