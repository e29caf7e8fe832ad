/**
 * client/: the device library. Built so far: resumable, verified blob download. Enrolment,
 * check-in, local training rounds and update upload come with the federation issue.
 */
export * from './download-blob.js';
