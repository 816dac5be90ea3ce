/** The lab tools (scripts/lab.ts) under the names the integration tests use. */
export * from '../../scripts/lab.js';
