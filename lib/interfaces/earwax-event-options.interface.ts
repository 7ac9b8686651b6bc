/**
 * Options of one `@EarwaxEvent` handler.
 *
 * @publicApi
 */
export interface EarwaxEventOptions {
  /**
   * Handlers of one event run from the highest priority to the lowest; equal
   * priorities run in the order the handlers were registered (module import
   * order, then controller order, then method order).
   * @default 0
   */
  priority?: number;
  /** Further extras, passed through to Nest as `EventPattern` extras. */
  extras?: Record<string, unknown>;
}
