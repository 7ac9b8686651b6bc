import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { ApplicationConfig, ModulesContainer } from '@nestjs/core';
import { NestDirectDispatcher } from '../../lib/pipeline/direct-dispatch.js';

describe('NestDirectDispatcher', () => {
  it('leaves every handler of a hybrid application to Nest', () => {
    // Its microservice may have global enhancers of its own, out of sight.
    let hybrid = true;
    const dispatcher = new NestDirectDispatcher(
      new ModulesContainer(),
      new ApplicationConfig(),
      () => hybrid,
    );
    const method = () => undefined;
    expect(dispatcher.compile(method)).toBeUndefined();
    // Not hybrid, but no controller has the method: Nest's handler still.
    hybrid = false;
    expect(dispatcher.compile(method)).toBeUndefined();
  });
});
