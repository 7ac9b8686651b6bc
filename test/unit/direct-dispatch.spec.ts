import 'reflect-metadata';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ApplicationConfig, ModulesContainer } from '@nestjs/core';
import { NestDirectDispatcher } from '../../lib/pipeline/direct-dispatch.js';
import {
  nestInternals,
  nestInternalsNow,
} from '../../lib/pipeline/nest-internals.js';

describe('NestDirectDispatcher', () => {
  // As EarwaxModule's NestInternalsReady does before the transport listens.
  beforeAll(() => nestInternals());

  it('leaves every handler of a hybrid application to Nest', () => {
    // Its microservice may have global enhancers of its own, out of sight.
    let hybrid = true;
    const dispatcher = new NestDirectDispatcher(
      new ModulesContainer(),
      new ApplicationConfig(),
      () => hybrid,
      nestInternalsNow,
    );
    const method = () => undefined;
    expect(dispatcher.compile(method)).toBeUndefined();
    // Not hybrid, but no controller has the method: Nest's handler still.
    hybrid = false;
    expect(dispatcher.compile(method)).toBeUndefined();
  });
});
