// Microphone and speaker choice: the SDK's MediaSources lists them; a choice applies to the call
// in progress and to the next ones.
import { MediaSources } from '../sdk/src/index.js';
import { $ } from './ui.js';

export const chosen = { microphone: null, speaker: null };

function fill(select, devices, current) {
  select.replaceChildren(
    ...devices.map((device, index) => {
      const option = document.createElement('option');
      option.value = device.deviceId;
      option.textContent = device.label || `${select.id} ${index + 1}`;
      option.selected = device.deviceId === current;
      return option;
    }),
  );
}

/** Fill the two lists and keep them current; `activeCall()` is the call a choice applies to now. */
export async function watchDevices(activeCall) {
  const sources = new MediaSources();
  const show = () => {
    const { inputs, outputs } = sources.devices;
    fill($('microphone'), inputs.audio, chosen.microphone);
    fill($('speaker'), outputs.audio, chosen.speaker);
  };
  sources.on('devicechange', show);
  $('microphone').addEventListener('change', async (event) => {
    chosen.microphone = event.target.value;
    await activeCall()?.setInputSource({ audio: { deviceId: chosen.microphone } });
  });
  $('speaker').addEventListener('change', async (event) => {
    chosen.speaker = event.target.value;
    await activeCall()?.setOutputSource(chosen.speaker);
  });
  await sources.get();
  show();
}

/** Apply the chosen devices to a call that just started. */
export async function applyDevices(call) {
  if (chosen.microphone) await call.setInputSource({ audio: { deviceId: chosen.microphone } });
  if (chosen.speaker) await call.setOutputSource(chosen.speaker);
}
