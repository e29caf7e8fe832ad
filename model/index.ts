/**
 * model/: everything about the base model and its adapters — formats, tokenizer, quantized
 * frozen weights, LoRA, forward pass, training, evaluation, generation. Knows nothing of the
 * network or of privacy.
 */
export * from './adamw.js';
export * from './adapter-file.js';
export * from './adapter-flat.js';
export * from './backend.js';
export * from './base-info.js';
export * from './bpe-tokenizer.js';
export * from './bpe-pretokenize.js';
export * from './byte-unicode.js';
export * from './checkpoint.js';
export * from './calibrate.js';
export * from './config.js';
export * from './device-training.js';
export * from './gptq.js';
export * from './evaluate.js';
export * from './fp16.js';
export * from './frozen-base.js';
export * from './generate.js';
export * from './gguf.js';
export * from './gguf-tokenizer.js';
export * from './gguf-writer.js';
export * from './hf-tokenizer.js';
export * from './safetensors.js';
export * from './lora.js';
export * from './lora-adapter-file.js';
export * from './lora-init.js';
export * from './load-base.js';
export * from './lora-config.js';
export * from './merge.js';
export { batchMatMul, frozenMatMul, kernelMode, matMul, setKernelMode, variableFrom, type KernelMode } from './ops/matmul.js';
export { installWasmKernels } from './ops/wasm-kernels.js';
export { startThreadedWasm, terminateWasmThreads } from './ops/wasm-threads.js';
export * from './open-base.js';
export * from './paths.js';
export * from './quant.js';
export * from './random-base.js';
export * from './replay.js';
export * from '../random/rng.js';
export * from './sampling.js';
export * from './text-tokenizer.js';
export * from './token-stream.js';
export * from './tokenizer.js';
export * from './trainer.js';
export * from './transformer.js';
export * from './weights.js';
export * from './windows.js';
