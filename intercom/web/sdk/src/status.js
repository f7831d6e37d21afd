// The seed SDK's status names, as frozen objects of strings (the values are what events carry).

export const ClientStatus = Object.freeze({
  OFFLINE: 'offline',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  ERROR: 'error',
});

/** A call's statuses, in the order a call goes through them (failed and ended both end it). */
export const CallStatus = Object.freeze({
  CONNECTING: 'connecting',
  RINGING: 'ringing',
  ACCEPTED: 'accepted',
  CONFIRMED: 'confirmed',
  FAILED: 'failed',
  ENDED: 'ended',
});
