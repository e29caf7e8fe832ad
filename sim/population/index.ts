/**
 * sim/population: a fleet of thousands of virtual devices on one machine — identities from one
 * seed file, shards as pointers into the partner domains, availability and Poisson check-ins,
 * training through the real Device library in worker threads against the real coordinator.
 */
export * from './availability.js';
export * from './fleet-progress.js';
export * from './fleet.js';
export * from './identities.js';
export * from './run-population.js';
export * from './shards.js';
export * from './epsilon-plot.js';
