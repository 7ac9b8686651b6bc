import { BUILT_IN_EVENTS } from '../earwax.constants.js';
import { EventNameError } from '../errors/event-name.error.js';

/**
 * The event types of one transport: the built-in ones, then those
 * registered (the `eventTypes` option, `registerEventType()`), each once.
 *
 * @internal
 */
export class EventTypes {
  private readonly names = new Set<string>(BUILT_IN_EVENTS);

  /**
   * @returns `name`.
   * @throws EventNameError if `name` is already registered (or empty).
   */
  register(name: string): string {
    if (typeof name !== 'string' || name.length === 0) {
      throw new EventNameError(
        String(name),
        'An event type must be a non-empty string.',
      );
    }
    if (this.names.has(name)) {
      throw new EventNameError(
        name,
        `Event type "${name}" is already registered.`,
      );
    }
    this.names.add(name);
    return name;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  list(): string[] {
    return [...this.names];
  }

  /**
   * Checks that every event some handler subscribes to is registered.
   *
   * @param handled Each event with the handlers (`Class.method`) of it.
   * @throws EventNameError naming the first unregistered event and its
   *   handlers.
   */
  check(handled: Iterable<[string, string[]]>): void {
    for (const [event, origins] of handled) {
      if (this.names.has(event)) continue;
      throw new EventNameError(
        event,
        `@EarwaxEvent('${event}') on ${origins.join(', ')}: event type "${event}" is not registered. ` +
          `Register it with transport.registerEventType('${event}') or the "eventTypes" option.`,
      );
    }
  }

  /** A rejection for dispatching an unregistered event. */
  unknown(name: string): Promise<never> {
    return Promise.reject(
      new EventNameError(name, `Event type "${name}" is not registered.`),
    );
  }
}
