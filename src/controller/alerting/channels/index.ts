export * from './ack.js';
export * from './delivery.js';
export * from './email.js';
export * from './pagerduty.js';
export * from './slack.js';
export * from './types.js';
export * from './webhook.js';
