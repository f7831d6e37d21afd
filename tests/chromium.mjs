// What every Chromium the tests launch shares: the system browser (never a downloaded one), its
// flags, and a sound meter for the pages. No imports, so both node harnesses (tests/browser and
// tests/web, each with its own node_modules) can use it.

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
// getUserMedia without a prompt, from Chromium's fake capture device (a beep every 500 ms), and
// loopback ICE candidates (the only network the tests have).
export const FAKE_MEDIA_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];
export const AUTOPLAY_ARG = '--autoplay-policy=no-user-gesture-required';

// Run in a page (page.addInitScript or page.evaluate): defines `window.__soundMeter(stream)`, an
// analyser on a stream of the far end's sound whose `measure()` gives the level (rms) and the
// dominant frequency (hz) of its latest 4096 samples; `close()` ends it.
export function installSoundMeter() {
  window.__soundMeter = (stream) => {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 4096;
    context.createMediaStreamSource(stream).connect(analyser);
    const wave = new Float32Array(analyser.fftSize);
    const spectrum = new Float32Array(analyser.frequencyBinCount);
    return {
      measure() {
        analyser.getFloatTimeDomainData(wave);
        const rms = Math.sqrt(wave.reduce((sum, x) => sum + x * x, 0) / wave.length);
        analyser.getFloatFrequencyData(spectrum);
        let peak = 1;
        for (let i = 2; i < spectrum.length; i++) if (spectrum[i] > spectrum[peak]) peak = i;
        return { rms, hz: (peak * context.sampleRate) / analyser.fftSize };
      },
      close: () => context.close(),
    };
  };
}
