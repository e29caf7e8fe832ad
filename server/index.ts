/**
 * server/: the coordinator service — programs, enrolment and request signing, the round state
 * machine (rxjs), storage (SQLite), gRPC handlers. Not built yet: see the federation issue.
 */
export {};
