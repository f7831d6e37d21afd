// The seed SDK's MediaSources: the browser's microphones, cameras and speakers, and
// 'devicechange' with the whole new list when that changes.

import { Emitter } from './events.js';

const EMPTY = Object.freeze({ inputs: { audio: [], video: [] }, outputs: { audio: [] } });

/** `{inputs: {audio, video}, outputs: {audio}}` from enumerateDevices()' list; each entry keeps
 * deviceId, kind, label and groupId (labels are empty until the page may use the microphone). */
export function groupDevices(list) {
  const devices = { inputs: { audio: [], video: [] }, outputs: { audio: [] } };
  const slots = { audioinput: devices.inputs.audio, videoinput: devices.inputs.video, audiooutput: devices.outputs.audio };
  for (const { deviceId, kind, label, groupId } of list) {
    slots[kind]?.push({ deviceId, kind, label, groupId });
  }
  return devices;
}

export class MediaSources extends Emitter {
  #mediaDevices;
  #devices = EMPTY;
  #watching = false;
  #onChange = () => {
    this.#look()
      .then((changed) => changed && this._emit('devicechange', this.#devices))
      .catch((error) => console.error('cannot list media devices', error));
  };

  /** `mediaDevices`: the browser's navigator.mediaDevices unless given (tests give a fake). */
  constructor(mediaDevices = globalThis.navigator?.mediaDevices) {
    super();
    if (!mediaDevices?.enumerateDevices) throw new TypeError('MediaSources needs navigator.mediaDevices (a secure context)');
    this.#mediaDevices = mediaDevices;
  }

  /** The devices as last seen (by get() or the watch); empty until the first get(). */
  get devices() {
    return this.#devices;
  }

  /** Look again, and resolve to the devices there are now; 'devicechange' when they differ
   * from those seen before. */
  async get() {
    const seen = this.#devices;
    if ((await this.#look()) && seen !== EMPTY) this._emit('devicechange', this.#devices);
    return this.#devices;
  }

  /** Update the list; true when it changed. */
  async #look() {
    const devices = groupDevices(await this.#mediaDevices.enumerateDevices());
    if (JSON.stringify(devices) === JSON.stringify(this.#devices)) return false;
    this.#devices = devices;
    return true;
  }

  on(event, handler) {
    super.on(event, handler);
    if (event === 'devicechange' && !this.#watching) {
      this.#watching = true;
      this.#mediaDevices.addEventListener('devicechange', this.#onChange);
    }
    return handler;
  }

  removeEventListener(event, handler) {
    super.removeEventListener(event, handler);
    if (event === 'devicechange' && this.#watching && this.listenerCount('devicechange') === 0) {
      this.#watching = false;
      this.#mediaDevices.removeEventListener('devicechange', this.#onChange);
    }
  }
}
