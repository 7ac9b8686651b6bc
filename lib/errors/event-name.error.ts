/**
 * An event name is unknown where a registered one is needed, or registered
 * twice. The offending name is on {@link EventNameError.eventName}.
 *
 * Thrown by `registerEventType` for a duplicate name, by `dispatchEvent` (as a
 * rejection) for an unknown name, and by `listen()` (so `app.listen()` rejects)
 * when an `@EarwaxEvent` handler names an event type nobody registered.
 *
 * @publicApi
 */
export class EventNameError extends Error {
  /**
   * @param eventName The offending event name.
   * @param message What is wrong with it; defaults to a sentence naming it.
   */
  constructor(
    readonly eventName: string,
    message = `Unknown or duplicate event type "${eventName}".`,
  ) {
    super(message);
    this.name = 'EventNameError';
  }
}
