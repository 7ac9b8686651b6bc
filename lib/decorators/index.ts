export * from './earwax-event.decorator.js';
