// A call the hub offers: who is calling, accept() or reject(). JsSIP has already answered
// 100 Trying, and answers 180 Ringing once the offer is applied (PROTOCOL.md section 5).

import { assertedIdentity } from './headers.js';

export class IncomingCall {
  #session;
  #call;
  #options;

  /** Made by the client for each offered INVITE, not by apps. */
  constructor(session, request, call, options) {
    this.#session = session;
    this.#call = call;
    this.#options = options;
    this.id = request.call_id;
    /** The display name in the INVITE's From (the hub puts the caller's name there). */
    this.displayName = session.remote_identity?.display_name ?? null;
    /** Who the hub asserts is calling (P-Asserted-Identity), or null (a Voice API call). */
    this.remoteIdentity = assertedIdentity(request);
    call.remoteIdentity = this.remoteIdentity;
  }

  /** Answer: 200 with our SDP answer. Returns the Call (statuses accepted, confirmed, ended). */
  accept() {
    if (this.#session.isEnded()) throw new Error('the call is no longer ringing');
    this.#session.answer(this.#options);
    return this.#call;
  }

  /** Decline: 480 Temporarily Unavailable, as the published client; the client emits `canceled`. */
  reject() {
    if (!this.#session.isEnded()) this.#session.terminate({ status_code: 480 });
  }
}

