// Types of intercom's JavaScript SDK (dist/intercom-sdk.js, sources in src/).

export type ClientStatusName = 'offline' | 'connecting' | 'connected' | 'error';
export type CallStatusName = 'connecting' | 'ringing' | 'accepted' | 'confirmed' | 'failed' | 'ended';

export declare const ClientStatus: Readonly<{
  OFFLINE: 'offline';
  CONNECTING: 'connecting';
  CONNECTED: 'connected';
  ERROR: 'error';
}>;
export declare const CallStatus: Readonly<{
  CONNECTING: 'connecting';
  RINGING: 'ringing';
  ACCEPTED: 'accepted';
  CONFIRMED: 'confirmed';
  FAILED: 'failed';
  ENDED: 'ended';
}>;
/** What the SDK sends as `SDK-Version`. */
export declare const SDK_VERSION: string;

/** The errors of the seed SDK; `code` 403, 406 or 500. */
export declare class ClientError extends Error {
  readonly code: number;
}
export declare class ForbiddenError extends ClientError {
  readonly code: 403;
}
export declare class NotAcceptableError extends ClientError {
  readonly code: 406;
}
export declare class InternalError extends ClientError {
  readonly code: 500;
}

declare class Emitter<Events extends Record<string, (...args: any[]) => unknown>> {
  on<E extends keyof Events & string>(event: E, handler: Events[E]): Events[E];
  removeEventListener<E extends keyof Events & string>(event: E, handler: Events[E]): void;
  off<E extends keyof Events & string>(event: E, handler: Events[E]): void;
}

export interface ClientOptions {
  /** Returns a fresh JWT: called before each re-registration and before each retry after a 403. */
  refreshToken: () => Promise<string> | string;
  /** `wss://host:port` (or a bare `host:port`); the page's own origin when not given. */
  host?: string;
}

export type ClientEvents = {
  status: (status: ClientStatusName) => void;
  error: (error: ClientError) => void;
  incoming: (call: IncomingCall) => void;
  canceled: (call: IncomingCall) => void;
};

export declare class MessageBirdClient extends Emitter<ClientEvents> {
  constructor(options: ClientOptions);
  readonly status: ClientStatusName;
  /** The hub's SIP domain (`host[:port]`). */
  readonly host: string;
  /** The seed's timings, in milliseconds; settable. */
  forbiddenRetryDelay: number;
  forbiddenAttempts: number;
  reconnectDelayMin: number;
  reconnectDelayMax: number;
  unregisterTimeout: number;
  /** Connect and register: resolves once `connected`, rejects with the `error` event's error. */
  setup(options: { jwt: string }): Promise<void>;
  /** Hang up, un-register, close the socket; ends `offline`. */
  destroy(): Promise<void>;
  /** Call out through the hub (the params reach its call flow); throws when not `connected`. */
  startCall(params?: Record<string, unknown>): Call;
}
export { MessageBirdClient as IntercomClient };

export type CallEvents = {
  status: (status: CallStatusName) => void;
  error: (error: ClientError) => void;
  muted: (muted: boolean) => void;
  /** A DTMF key the far end sent, and who the hub asserts sent it (null: its own flow). */
  digits: (key: string, assertedIdentity: string | null) => void;
  /** The far end asked this side to open its door (a door's event). */
  unlock: (assertedIdentity: string | null) => void;
};

export declare class Call extends Emitter<CallEvents> {
  /** The SIP Call-ID. */
  readonly id: string;
  readonly status: CallStatusName | null;
  readonly isMuted: boolean;
  /** Who the hub asserts is at the other end, or null. */
  readonly remoteIdentity: string | null;
  /** The element the far end's audio plays on (null outside a page). */
  readonly audioElement: HTMLAudioElement | null;
  /** The speaker chosen with setOutputSource, or null. */
  readonly outputSource: string | null;
  /** Resolves once the call has ended or failed. */
  readonly ended: Promise<void>;
  mute(muted: boolean): void;
  /** Only 0-9, * and # (TypeError otherwise); once answered. One INFO per digit, 600 ms apart. */
  sendDigits(digits: string): void;
  /** Ask the far end (a door) to open: true when it took the request. */
  requestUnlock(): Promise<boolean>;
  setInputSource(constraints: { audio: { deviceId: string } }): Promise<void>;
  setOutputSource(deviceId: string): Promise<void>;
  disconnect(): Promise<void>;
}

export declare class IncomingCall {
  /** The SIP Call-ID. */
  readonly id: string;
  readonly displayName: string | null;
  /** Who the hub asserts is calling, or null (a Voice API call). */
  readonly remoteIdentity: string | null;
  accept(): Call;
  reject(): void;
}

export interface MediaDeviceEntry {
  deviceId: string;
  kind: 'audioinput' | 'videoinput' | 'audiooutput';
  label: string;
  groupId: string;
}
export interface Devices {
  inputs: { audio: MediaDeviceEntry[]; video: MediaDeviceEntry[] };
  outputs: { audio: MediaDeviceEntry[] };
}

export declare class MediaSources extends Emitter<{ devicechange: (devices: Devices) => void }> {
  /** `mediaDevices`: navigator.mediaDevices unless given. */
  constructor(mediaDevices?: MediaDevices);
  /** The devices as last seen (empty until the first get()). */
  readonly devices: Devices;
  get(): Promise<Devices>;
}
