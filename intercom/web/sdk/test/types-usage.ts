// Compiled (not run) by types.test.mjs with `tsc --noEmit`: the way a page uses the SDK must type-check.
import { IntercomClient, MediaSources, MessageBirdClient, type Devices } from '../index.js';

async function page(): Promise<void> {
  const client: MessageBirdClient = new IntercomClient({ refreshToken: async () => 'jwt', host: 'wss://hub:8443' });
  client.on('status', (status) => console.log(status.toUpperCase()));
  client.on('error', (error) => console.log(error.code, error.message));
  client.on('incoming', (incoming) => {
    console.log(incoming.displayName, incoming.remoteIdentity);
    const call = incoming.accept();
    call.on('digits', (key, who) => console.log(key, who));
  });
  await client.setup({ jwt: 'jwt' });
  const call = client.startCall({ to: 'door' });
  call.on('status', (status) => status === 'confirmed' && call.sendDigits('12#'));
  call.on('muted', (muted: boolean) => console.log(muted));
  call.mute(!call.isMuted);
  const opened: boolean = await call.requestUnlock();
  await call.setInputSource({ audio: { deviceId: 'default' } });
  await call.setOutputSource('default');
  await call.disconnect();
  const sources = new MediaSources();
  const devices: Devices = await sources.get();
  sources.on('devicechange', (now) => console.log(now.outputs.audio.length, devices, opened));
  await client.destroy();
}
void page;
