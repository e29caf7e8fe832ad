/**
 * client/: the device library — enrol, download and verify the base and adapters, train LoRA
 * locally with model/, build and submit updates. Not built yet: see the federation issue.
 */
export {};
