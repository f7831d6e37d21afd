// intercom's JavaScript client SDK: the seed's API (MessageBirdClient), on JsSIP, speaking what
// ../shared/PROTOCOL.md describes, plus the hub's additions of docs/protocol.md.

export { MessageBirdClient, MessageBirdClient as IntercomClient } from './client.js';
export { Call } from './call.js';
export { IncomingCall } from './incoming.js';
export { MediaSources } from './media-sources.js';
export { ClientStatus, CallStatus } from './status.js';
export { ClientError, ForbiddenError, NotAcceptableError, InternalError } from './errors.js';
export { SDK_VERSION } from './headers.js';
