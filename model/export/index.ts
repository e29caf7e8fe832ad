/**
 * model/export/: taking an adapter out of fedtune and bringing one in — Hugging Face PEFT
 * directories, GGUF LoRA adapters for llama.cpp, and merged models (GGUF or HF) — all over
 * adapters as plain data, without TensorFlow.js.
 */
export * from './adapter-data.js';
export * from './gguf-lora.js';
export * from './merged.js';
export * from './peft.js';
