// The ring tone. Browsers play sound only after the person has touched the page once (autoplay
// policy); where this one would refuse, the page asks for that tap once, and says why.
import { $ } from './ui.js';

/** Would this browser refuse to play the ring unasked? (Muted playing is always allowed, so
 * trying it says nothing: ask the policy, or see whether a new AudioContext starts suspended.) */
function soundNeedsTap() {
  if (navigator.getAutoplayPolicy) return navigator.getAutoplayPolicy('mediaelement') !== 'allowed';
  const context = new AudioContext();
  const suspended = context.state === 'suspended';
  context.close();
  return suspended;
}

/** The tap: playing inside it (silently) is what lets the ring play later without one. */
async function enableSound() {
  const ring = $('ring');
  ring.volume = 0;
  await ring.play().catch(() => {});
  ring.pause();
  ring.volume = 1;
  $('sound').hidden = true;
}

export function prepareSound() {
  $('enable-sound').addEventListener('click', enableSound);
  $('sound').hidden = !soundNeedsTap();
}

export async function startRinging() {
  const ring = $('ring');
  ring.currentTime = 0;
  document.body.dataset.ringing = 'true';
  try {
    await ring.play();
  } catch {
    $('sound').hidden = false; // refused after all: the visitor rings in silence until a tap
  }
}

export function stopRinging() {
  $('ring').pause();
  delete document.body.dataset.ringing;
}
