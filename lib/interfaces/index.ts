export * from './block-list.interface.js';
export * from './connection.interface.js';
export * from './earwax-event-options.interface.js';
export * from './earwax-metrics.interface.js';
export * from './earwax-options.interface.js';
export * from './telnet.interface.js';
export * from './websocket.interface.js';
