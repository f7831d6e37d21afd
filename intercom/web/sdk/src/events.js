// The seed SDK's event API: on(), off() and removeEventListener(). A handler that throws is
// reported on the console and does not stop the others (nor the SDK's own work).

export class Emitter {
  #handlers = new Map();

  /** Listen for `event`; returns the handler, so that it can be removed later. */
  on(event, handler) {
    if (typeof handler !== 'function') throw new TypeError(`on('${event}') needs a function`);
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(handler);
    return handler;
  }

  removeEventListener(event, handler) {
    this.#handlers.get(event)?.delete(handler);
  }

  off(event, handler) {
    this.removeEventListener(event, handler);
  }

  listenerCount(event) {
    return this.#handlers.get(event)?.size ?? 0;
  }

  _emit(event, ...args) {
    for (const handler of [...(this.#handlers.get(event) ?? [])]) {
      try {
        const result = handler(...args);
        if (result && typeof result.catch === 'function') {
          result.catch((error) => console.error(`'${event}' handler failed`, error));
        }
      } catch (error) {
        console.error(`'${event}' handler failed`, error);
      }
    }
  }
}
