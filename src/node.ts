// memfit for Node (`import ... from 'memfit/node'`): everything in the main entry plus the file
// APIs that need node:fs (safetensors files, training checkpoints) and the bundled text corpus.
export * from './index.js';
export { saveSafetensors, loadSafetensors, readSafetensorsHeader } from './io/safetensors_file.js';
export { saveCheckpoint, loadCheckpoint, CheckpointError, CHECKPOINT_KEY } from './io/checkpoint.js';
export type { TrainingState, JsonValue } from './io/checkpoint.js';
export { loadSotuText } from './data/sotu.js';
export { inspectSafetensors, convertSafetensors } from './io/convert_model_file.js';
export type { ConvertFileOptions } from './io/convert_model_file.js';
export { saveModelFolder, loadModelFolder } from './io/model_folder_file.js';
export type { SaveModelFolderOptions } from './io/model_folder_file.js';
