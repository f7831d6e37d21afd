// MediaSources over a fake navigator.mediaDevices: the seed's device groups, get(), and
// 'devicechange' only while somebody listens and only when the list changed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MediaSources } from '../src/index.js';

class FakeMediaDevices extends EventTarget {
  constructor(list) {
    super();
    this.list = list;
    this.listeners = 0;
  }

  async enumerateDevices() {
    return this.list.map((entry) => ({ ...entry, toJSON() {} }));
  }

  addEventListener(type, listener) {
    this.listeners += 1;
    super.addEventListener(type, listener);
  }

  removeEventListener(type, listener) {
    this.listeners -= 1;
    super.removeEventListener(type, listener);
  }
}

const mic = { deviceId: 'mic1', kind: 'audioinput', label: 'Built-in mic', groupId: 'g1' };
const cam = { deviceId: 'cam1', kind: 'videoinput', label: 'Camera', groupId: 'g2' };
const speaker = { deviceId: 'spk1', kind: 'audiooutput', label: 'Speaker', groupId: 'g1' };
const usb = { deviceId: 'usb1', kind: 'audioinput', label: 'USB headset', groupId: 'g3' };

test('get() groups the devices as the seed does; devices is the last list seen', async () => {
  const sources = new MediaSources(new FakeMediaDevices([mic, cam, speaker]));
  assert.deepEqual(sources.devices, { inputs: { audio: [], video: [] }, outputs: { audio: [] } });
  const devices = await sources.get();
  assert.deepEqual(devices, { inputs: { audio: [mic], video: [cam] }, outputs: { audio: [speaker] } });
  assert.deepEqual(sources.devices, devices);
});

test("'devicechange' with the new list when one comes; off() stops watching", async () => {
  const browser = new FakeMediaDevices([mic, speaker]);
  const sources = new MediaSources(browser);
  await sources.get();
  const changes = [];
  const handler = (devices) => changes.push(devices);
  sources.on('devicechange', handler);
  sources.on('devicechange', handler); // the same handler twice: still one watch
  assert.equal(browser.listeners, 1);
  const changed = new Promise((resolve) => sources.on('devicechange', resolve));
  browser.list = [mic, usb, speaker];
  browser.dispatchEvent(new Event('devicechange'));
  const devices = await changed;
  assert.deepEqual(devices.inputs.audio, [mic, usb]);
  assert.equal(changes.length, 1);
  sources.off('devicechange', handler);
  assert.equal(browser.listeners, 1); // the promise's handler still listens
  sources.removeEventListener('devicechange', () => {}); // a handler never added: nothing
  assert.equal(browser.listeners, 1);
});

test('the same list again is no change', async () => {
  const browser = new FakeMediaDevices([mic]);
  const sources = new MediaSources(browser);
  await sources.get();
  let changes = 0;
  sources.on('devicechange', () => changes++);
  await sources.get();
  assert.equal(changes, 0);
  browser.list = [];
  await sources.get();
  assert.equal(changes, 1);
});

test('no mediaDevices (not a secure context): a clear TypeError', () => {
  assert.throws(() => new MediaSources(undefined), /secure context/);
  assert.throws(() => new MediaSources({}), /secure context/);
});
