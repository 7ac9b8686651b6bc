import { EventPattern } from '@nestjs/microservices';
import {
  EARWAX_EVENTS_METADATA,
  EARWAX_PATTERN_PREFIX,
  EARWAX_TRANSPORT,
  EXTRA_METHOD,
  EXTRA_ORIGIN,
  EXTRA_PRIORITY,
} from '../earwax.constants.js';
import { EventNameError } from '../errors/event-name.error.js';
import type { EarwaxEventOptions } from '../interfaces/earwax-event-options.interface.js';

/**
 * Routes an Earwax event to a controller method: the NestJS form of
 * `@server.event`. Built on `@EventPattern`, so Nest guards, interceptors,
 * pipes and exception filters all apply. `@Payload()` gives the event's data
 * (the line for `on_data`, the reason for `on_disconnect` and `on_block`) and
 * `@Ctx()` the {@link ConnectionContext}.
 *
 * Several handlers of one event run one after another, highest `priority`
 * first, then in registration order; one that returns (or resolves, or emits
 * last) `EVENT_HANDLED` stops the rest. Stack the decorator, or pass an array,
 * to handle several events with one method.
 *
 * @param event The event type (`'on_data'`, `'on_connect'`, ...), or several.
 * @param options Priority and extras.
 * @throws EventNameError for an empty event name. An event name nobody
 *   registered makes `app.listen()` reject with an `EventNameError` naming the
 *   class and method.
 *
 * @example
 * ```ts
 * @Controller()
 * export class EchoController {
 *   @EarwaxEvent('on_data')
 *   echo(@Payload() line: Buffer, @Ctx() ctx: ConnectionContext) {
 *     ctx.sendBytes(line);
 *   }
 * }
 * ```
 *
 * @publicApi
 */
export function EarwaxEvent(
  event: string | string[],
  options: EarwaxEventOptions = {},
): MethodDecorator {
  const events = ([] as string[]).concat(event);
  for (const name of events) {
    if (typeof name !== 'string' || name.length === 0) {
      throw new EventNameError(
        String(name),
        'An @EarwaxEvent event name must be a non-empty string.',
      );
    }
  }
  return (target, key, descriptor) => {
    const method = descriptor.value as object;
    // `@EventPattern` replaces the method's patterns: a stacked
    // `@EarwaxEvent` passes it those of the ones below it too, as recorded
    // under Earwax's own key (read when the class is defined, so it cannot
    // wait for Nest's internals to load).
    const earlier: unknown = Reflect.getMetadata(
      EARWAX_EVENTS_METADATA,
      method,
    );
    const patterns = (
      Array.isArray(earlier) ? (earlier as string[]) : []
    ).concat(events.map((name) => EARWAX_PATTERN_PREFIX + name));
    Reflect.defineMetadata(EARWAX_EVENTS_METADATA, patterns, method);
    const decorate = EventPattern<string[]>(patterns, EARWAX_TRANSPORT, {
      ...options.extras,
      [EXTRA_PRIORITY]: options.priority ?? 0,
      [EXTRA_ORIGIN]: `${target.constructor.name}.${String(key)}`,
      [EXTRA_METHOD]: method,
    } as Record<string, unknown>) as MethodDecorator;
    return decorate(target, key, descriptor);
  };
}
