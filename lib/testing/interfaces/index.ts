export * from './earwax-test-client-options.interface.js';
export * from './earwax-test-server-options.interface.js';
