import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import {
  PATTERN_EXTRAS_METADATA,
  PATTERN_HANDLER_METADATA,
  PATTERN_METADATA,
  TRANSPORT_METADATA,
} from '@nestjs/microservices/constants.js';
import { PatternHandler } from '@nestjs/microservices/enums/pattern-handler.enum.js';
import {
  EARWAX_TRANSPORT,
  EarwaxEvent,
  EventNameError,
} from '../../lib/index.js';
import { EXTRA_METHOD } from '../../lib/earwax.constants.js';

function metadataOf(method: object) {
  return {
    patterns: Reflect.getMetadata(PATTERN_METADATA, method),
    handler: Reflect.getMetadata(PATTERN_HANDLER_METADATA, method),
    transport: Reflect.getMetadata(TRANSPORT_METADATA, method),
    extras: Reflect.getMetadata(PATTERN_EXTRAS_METADATA, method),
  };
}

describe('@EarwaxEvent', () => {
  it('marks an event handler bound to the Earwax transport, with a namespaced pattern', () => {
    class Game {
      @EarwaxEvent('on_data', { priority: 3, extras: { tag: 'x' } })
      data() {}
    }
    expect(metadataOf(Game.prototype.data)).toEqual({
      patterns: ['earwax:on_data'],
      handler: PatternHandler.EVENT,
      transport: EARWAX_TRANSPORT,
      extras: {
        tag: 'x',
        earwaxPriority: 3,
        earwaxOrigin: 'Game.data',
        // How the transport finds the method to call it directly.
        [EXTRA_METHOD]: Game.prototype.data,
      },
    });
  });

  it('subscribes one method to several events, stacked or as an array', () => {
    class Game {
      @EarwaxEvent('on_connect')
      @EarwaxEvent('on_tell')
      stacked() {}

      @EarwaxEvent(['on_connect', 'on_disconnect'])
      listed() {}
    }
    expect(metadataOf(Game.prototype.stacked).patterns).toEqual([
      'earwax:on_tell',
      'earwax:on_connect',
    ]);
    expect(metadataOf(Game.prototype.listed).patterns).toEqual([
      'earwax:on_connect',
      'earwax:on_disconnect',
    ]);
  });

  it('defaults the priority to 0', () => {
    class Game {
      @EarwaxEvent('on_data')
      data() {}
    }
    expect(metadataOf(Game.prototype.data).extras.earwaxPriority).toBe(0);
  });

  it('rejects an empty event name at once', () => {
    expect(() => EarwaxEvent('')).toThrow(EventNameError);
    expect(() => EarwaxEvent(['on_data', ''])).toThrow(/non-empty string/);
  });
});
