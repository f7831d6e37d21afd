// The ring tone. Browsers play sound only after the person has touched the page once (autoplay
// policy); when the first try is refused, the page asks for that tap once, and says why.
import { $ } from './ui.js';

let soundAllowed = false;

function askForTap() {
  $('sound').hidden = false;
}

/** Try to play (silently) so the browser says now, not at the first ring, whether it needs a tap. */
export async function prepareSound() {
  const ring = $('ring');
  $('enable-sound').addEventListener('click', async () => {
    ring.muted = false;
    await ring.play().catch(() => {});
    ring.pause();
    soundAllowed = true;
    $('sound').hidden = true;
  });
  ring.muted = true;
  try {
    await ring.play();
    soundAllowed = true;
  } catch {
    askForTap();
  } finally {
    ring.pause();
    ring.muted = false;
  }
}

export async function startRinging() {
  const ring = $('ring');
  ring.currentTime = 0;
  try {
    await ring.play();
  } catch {
    if (!soundAllowed) askForTap();
  }
  document.body.dataset.ringing = 'true';
}

export function stopRinging() {
  $('ring').pause();
  delete document.body.dataset.ringing;
}
