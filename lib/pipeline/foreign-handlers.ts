import { MetadataScanner, type ModulesContainer } from '@nestjs/core';
import { EARWAX_EVENTS_METADATA } from '../earwax.constants.js';
import type { NestInternals } from './nest-internals.js';

/**
 * A controller method that Nest hands every transport of the application
 * but that `EarwaxTransport` never calls: a plain `@EventPattern` or
 * `@MessagePattern`, bound to no transport.
 *
 * @internal
 */
export interface ForeignHandler {
  /** `Class.method`. */
  readonly origin: string;
  /** The decorator it carries. */
  readonly decorator: '@EventPattern' | '@MessagePattern';
  /** Its patterns, as given to the decorator. */
  readonly patterns: readonly unknown[];
}

/**
 * Every controller method of the application with a pattern decorator bound
 * to no transport, and no `@EarwaxEvent`: what Nest gives an
 * `EarwaxTransport` besides its own handlers. Nest's `addHandler()` receives
 * only the pattern and a wrapped callback, so the method's name is found here,
 * by the metadata its decorator wrote.
 *
 * @param modules The application's modules.
 * @param nest The metadata keys of Nest's pattern decorators.
 * @returns The methods, in module and class order.
 *
 * @internal
 */
export function findForeignHandlers(
  modules: ModulesContainer,
  nest: Pick<
    NestInternals,
    | 'PATTERN_METADATA'
    | 'TRANSPORT_METADATA'
    | 'PATTERN_HANDLER_METADATA'
    | 'PatternHandler'
  >,
): ForeignHandler[] {
  const found: ForeignHandler[] = [];
  const seen = new Set<unknown>();
  const scanner = new MetadataScanner();
  for (const module of modules.values()) {
    for (const wrapper of module.controllers.values()) {
      const type = wrapper.metatype as { prototype?: object } | null;
      const prototype = type?.prototype;
      if (!prototype || seen.has(prototype)) continue;
      seen.add(prototype);
      for (const name of scanner.getAllMethodNames(prototype)) {
        const method = (prototype as Record<string, unknown>)[name];
        if (typeof method !== 'function') continue;
        const patterns: unknown = Reflect.getMetadata(
          nest.PATTERN_METADATA,
          method,
        );
        if (!Array.isArray(patterns) || patterns.length === 0) continue;
        if (Reflect.getMetadata(EARWAX_EVENTS_METADATA, method) !== undefined) {
          continue;
        }
        // Bound to a transport: Nest gives it to that transport only.
        if (
          Reflect.getMetadata(nest.TRANSPORT_METADATA, method) !== undefined
        ) {
          continue;
        }
        const kind: unknown = Reflect.getMetadata(
          nest.PATTERN_HANDLER_METADATA,
          method,
        );
        found.push({
          origin: `${(wrapper.metatype as { name?: string }).name ?? 'anonymous'}.${name}`,
          decorator:
            kind === nest.PatternHandler.EVENT
              ? '@EventPattern'
              : '@MessagePattern',
          patterns: patterns as unknown[],
        });
      }
    }
  }
  return found;
}

/**
 * One log line about a handler `EarwaxTransport` never calls, saying what to
 * use instead; `undefined` when it is most likely meant for another
 * transport of the application.
 *
 * @param handler The method, or only its decorator and pattern when the
 *   application's modules are not known (no `EarwaxModule`).
 * @param isEarwaxEvent Whether a pattern names an event this transport
 *   dispatches (`on_data`, a registered user event).
 * @param otherTransports Whether the application runs another transport,
 *   which the handler may be meant for.
 *
 * @internal
 */
export function describeForeignHandler(
  handler: ForeignHandler,
  isEarwaxEvent: (pattern: unknown) => boolean,
  otherTransports: boolean,
): string | undefined {
  const event = handler.patterns.find(isEarwaxEvent);
  const shown = handler.patterns.map(formatPattern).join(', ');
  const what = `${handler.origin} is decorated ${handler.decorator}(${shown}), which EarwaxTransport never calls`;
  if (event !== undefined) {
    return `${what}: use @EarwaxEvent(${formatPattern(event)}) for an Earwax event.`;
  }
  if (otherTransports) return undefined;
  return (
    `${what} (it routes only @EarwaxEvent methods, and this application has no other transport): ` +
    `use @EarwaxEvent('name') after transport.registerEventType('name') for an event of your own, ` +
    `or bind the decorator to the transport it is meant for, as in ${handler.decorator}(${shown}, Transport.TCP).`
  );
}

function formatPattern(pattern: unknown): string {
  if (typeof pattern === 'string') return `'${pattern}'`;
  try {
    return JSON.stringify(pattern) ?? String(pattern);
  } catch {
    return String(pattern);
  }
}
