// The seed SDK's errors, each with the SIP-derived `code` it documents (403, 406, 500).

export class ClientError extends Error {
  constructor(message, code = 500) {
    super(message);
    this.name = 'ClientError';
    this.code = code;
  }
}

/** The hub refused the token (403) five times, each after a fresh refreshToken(). */
export class ForbiddenError extends ClientError {
  constructor(message) {
    super(message, 403);
    this.name = 'ForbiddenError';
  }
}

/** The hub refused the token's identity (406). Not retried: a new token will not help. */
export class NotAcceptableError extends ClientError {
  constructor(message) {
    super(message, 406);
    this.name = 'NotAcceptableError';
  }
}

/** Any other registration failure, and a call's failure (500 in the seed SDK). */
export class InternalError extends ClientError {
  constructor(message) {
    super(message, 500);
    this.name = 'InternalError';
  }
}
