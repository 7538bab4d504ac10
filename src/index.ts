// memfit: train neural networks in less memory. Public API.
export { MemfitError, UnknownDTypeError, InvalidArgumentError, ShapeMismatchError, OutOfMemoryError, CheckpointError } from './errors.js';
export { FORMATS, DTYPE_NAMES, formatOf, canonicalDType, codeValue, maxFiniteCode, isDTypeName } from './dtype/formats.js';
export type { DType, DTypeAlias, DTypeName, FormatTraits, NanEncoding } from './dtype/formats.js';
export { finfo, formatTable } from './dtype/finfo.js';
export type { FInfo } from './dtype/finfo.js';
export { encode, decode } from './dtype/encode.js';
export type { Rounding, EncodeOptions, EncodeInput, DecodeInput } from './dtype/encode.js';
export { WasmArray, allocate } from './dtype/host_array.js';
export type { WasmArrayKind } from './dtype/host_array.js';
export type { CodeArray, WasmBuild } from './dtype/wasm.js';
export { setWasmSimd, wasmBuild } from './dtype/wasm.js';
export { pack, unpack, packedByteLength } from './dtype/pack.js';
export { mxQuantize, mxDequantize, MX_ELEMENT_DTYPES, amax, scaleFromAmax, quantizePerTensor, dequantizePerTensor } from './dtype/mx.js';
export type { MxTensor, PerTensorQuantized } from './dtype/mx.js';
export { scaledMatmul } from './dtype/scaled_mm.js';
export type { ScaledMatmulOptions, ScaledMatmulResult, MatmulScale } from './dtype/scaled_mm.js';
export { Tensor, dispatch } from './tensor/tensor.js';
export { setDefaultDtype, getDefaultDtype, DEFAULT_DTYPES } from './tensor/default_dtype.js';
export type { DefaultDType } from './tensor/default_dtype.js';
export type { TensorOptions } from './tensor/tensor.js';
export type { TensorCastOptions } from './backend/cast_options.js';
export { createBackend } from './backend/select.js';
export type { BackendOptions } from './backend/select.js';
export type { Backend, BackendKind, TensorDType, TensorRef, Storage, Kernels, UnaryOp, BinaryOp, ReduceOp, CastOptions, MatmulOptions, AdamWHyper, AdamWDeviceInputs, BackendStats, TimedRegion } from './backend/backend.js';
export { timeRegion } from './backend/backend.js';
export { MemoryTracker, CATEGORIES, sizeClass } from './backend/memory.js';
export type { Category, MemoryStats, MemoryTrace, MemoryEvent, CategoryStats } from './backend/memory.js';
export { WasmBackend } from './backend/wasm/backend.js';
export { MetaBackend } from './backend/meta.js';
export { NotImplementedError } from './backend/not_implemented.js';
export * from './autograd/index.js';
export { Generator, defaultGenerator, manualSeed } from './random.js';
export type { GeneratorState } from './random.js';
export { Parameter } from './nn/parameter.js';
export type { ParameterOptions, ParameterFromOptions } from './nn/parameter.js';
export { Module } from './nn/module.js';
export type { StateDict, BufferOptions, LoadStateDictOptions, LoadStateDictResult } from './nn/module.js';
export { ModuleList, Sequential } from './nn/container.js';
export * as functional from './nn/functional.js';
export * as init from './nn/init.js';
export { Linear, Embedding, Dropout, ReLU, GELU, SiLU, defaultBackend } from './nn/layers.js';
export type { LayerOptions, LinearParameters } from './nn/layers.js';
export { RMSNorm, LayerNorm } from './nn/normalization.js';
export { Llama, LlamaDecoderLayer, CausalSelfAttention, SwiGLU, RotaryEmbedding } from './nn/llama.js';
export type { LlamaConfig, LlamaForwardOptions, ModelOptions } from './nn/llama.js';
export { llamaConfigFromHf, hfKeyToMemfit, memfitKeyToHf, llamaStateDictFromHf } from './nn/hf_llama.js';
export { Conv2d, BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d, Flatten } from './nn/vision_layers.js';
export type { BatchNormLayerOptions } from './nn/vision_layers.js';
export { ResNet, BasicBlock, Bottleneck, RESNET_CONFIGS, resnet } from './nn/resnet.js';
export type { ResNetConfig, ResNetName, ResNetBlock, ResNetOptions } from './nn/resnet.js';
export {
  BertForMaskedLM, BertModel, BertEmbeddings, BertLayer, BertEncoder, BertSelfAttention, BertAttention, BertIntermediate, BertResidualOutput,
  BertOnlyMLMHead, BertLMPredictionHead, BertPredictionHeadTransform, BERT_BASE,
} from './nn/bert.js';
export type { BertConfig, BertOptions, BertForwardOptions } from './nn/bert.js';
export { bertConfigFromHf, bertConfigToHf, hfBertKeyToMemfit, memfitBertKeyToHf, bertStateDictFromHf } from './nn/hf_bert.js';
export { modelToFolderFiles, modelFromFolderFiles, modelFromConfig, weightsToTensors, ModelFolderError } from './io/model_folder.js';
export type { PretrainedModel, ModelFolderFiles, LoadedModel, LoadModelOptions } from './io/model_folder.js';
export { ByteTextDataset } from './data/byte_text.js';
export type { TokenBatch } from './data/byte_text.js';
export * from './optim/index.js';
export { autocast, autocastModule, autocastDtype, autocastClass, AUTOCAST_LOWER_PRECISION_OPS, AUTOCAST_FLOAT32_OPS, AUTOCAST_PROMOTE_OPS } from './amp/autocast.js';
export type { AutocastOptions, AutocastDType } from './amp/autocast.js';
export * from './recompute/index.js';
export { GradScaler, GradScalerError } from './amp/grad_scaler.js';
export type { GradScalerOptions, GradScalerStateDict } from './amp/grad_scaler.js';
export { convertToFloat8Training, Float8Linear, FLOAT8_E4M3_MAX, FLOAT8_E5M2_MAX } from './amp/float8.js';
export type { Float8Recipe, DelayedScalingRecipe, CurrentScalingRecipe, Float8Filter, Float8TrainingOptions } from './amp/float8.js';
export {
  serializeSafetensors, parseSafetensors, tensorsToSafetensors, safetensorsToTensors, SafetensorsError, MEMFIT_DTYPES_KEY,
} from './io/safetensors.js';
export type { RawTensor, ParsedTensor, SafetensorsHeader, LoadOptions as SafetensorsLoadOptions } from './io/safetensors.js';
export {
  inspectSafetensorsBytes, convertSafetensorsBytes, resolveTarget, fp8Scale, ConvertError, CONVERSION_KEY, SCALE_SUFFIX, CONVERT_TARGETS, STAT_DTYPES,
} from './io/convert_model.js';
export type {
  ConvertModelOptions, ConvertReport, TensorConversionReport, ConvertTarget, ScaleKind, ConversionMetadata, ConvertedTensorEntry, ConversionRun,
  InspectOptions, InspectReport, InspectedTensor, TensorStats, DTypeTotal,
} from './io/convert_model.js';
export { LanguageModelTrainer, TINY_LLAMA, MEDIUM_LLAMA, TRAIN_OPTIMIZERS, TRAIN_PRECISIONS, TRAIN_MEMORY_PRESETS, LEAST_MEMORY, applyMemoryPreset, tinyLlamaConfig } from './train/language_model.js';
export type { TrainConfig, StepResult, TrainOptimizer, TrainPrecision, TrainMemoryPreset } from './train/language_model.js';
export { lineChart, lossChart, throughputChart, memoryChart, trainingCharts, tradeoffChart, memoryTimelineChart, stackedBarChart, CATEGORY_COLORS } from './report/charts.js';
export type { ChartStep, ChartSeries, ChartOptions, ValidationPoint, TradeoffPoint, TimelinePoint, StackedBar } from './report/charts.js';
export { trainingReportHtml, isTrainingReportHtml, isMemfitReportHtml, planReportHtml, REPORT_GENERATOR, PLAN_REPORT_GENERATOR } from './report/html.js';
export type { TrainingReportData, PlanReportData, ReportTable } from './report/html.js';
