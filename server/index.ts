/**
 * server/: the coordinator. Built so far: the content-addressed blob store. Programs,
 * enrolment and signing checks, the round state machine, SQLite storage and the gRPC handlers
 * come with the federation issue.
 */
export * from './blob-service.js';
export * from './blob-store.js';
