/** The alerting core (issue 6): pure model + channels. See docs/alerting.md. */
export * from './availability.js';
export * from './burnrate.js';
export * from './channels/index.js';
export * from './escalation.js';
export * from './grouping.js';
export * from './lifecycle.js';
