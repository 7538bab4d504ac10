// The wasm backend's kernels that live in family modules (one file per kernel family, each with
// its AssemblyScript twin in assembly/kernels/ and its shader in shaders/).
import type { WasmBackend } from './backend.js';
import type { FamilyKernelName, FamilyTable } from '../backend.js';
import * as norms from './norms.js';
import * as embedding from './embedding.js';
import * as attention from './attention.js';
import * as loss from './loss.js';
import * as optim from './optim.js';
import * as scaledMm from './scaled_mm.js';
import * as vision from './vision.js';
import * as optim8bit from './optim8bit.js';

type FamilyKernels = FamilyTable<WasmBackend, FamilyKernelName>;

export const wasmFamilies: FamilyKernels = {
  rmsNorm: norms.rmsNorm,
  rmsNormBackward: norms.rmsNormBackward,
  layerNorm: norms.layerNorm,
  layerNormBackward: norms.layerNormBackward,
  embedding: embedding.embedding,
  embeddingBackward: embedding.embeddingBackward,
  attention: attention.attention,
  attentionBackward: attention.attentionBackward,
  crossEntropy: loss.crossEntropy,
  scaledMatmul: scaledMm.scaledMatmul,
  float8ScaleUpdate: scaledMm.float8ScaleUpdate,
  nonFiniteCheckAndUnscale: optim.nonFiniteCheckAndUnscale,
  ampUpdateScale: optim.ampUpdateScale,
  globalNorm: optim.globalNorm,
  adamw: optim.adamw,
  quantizeBlockwise: optim8bit.quantizeBlockwise,
  dequantizeBlockwise: optim8bit.dequantizeBlockwise,
  optimizer8bit: optim8bit.optimizer8bit,
  conv2d: vision.conv2d,
  conv2dBackwardInput: vision.conv2dBackwardInput,
  conv2dBackwardWeight: vision.conv2dBackwardWeight,
  batchNormStats: vision.batchNormStats,
  batchNorm: vision.batchNorm,
  batchNormBackward: vision.batchNormBackward,
  maxPool2d: vision.maxPool2d,
  maxPool2dBackward: vision.maxPool2dBackward,
  adaptiveAvgPool2d: vision.adaptiveAvgPool2d,
  adaptiveAvgPool2dBackward: vision.adaptiveAvgPool2dBackward,
};
