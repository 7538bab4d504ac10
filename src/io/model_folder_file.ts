// Model folders on disk (Node): saveModelFolder writes config.json and model.safetensors, each
// atomically (temporary file, fsync, rename); it creates the folder and never replaces an existing
// file unless asked to (overwrite: true). loadModelFolder reads them back (src/io/model_folder.ts).
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkOptions, describeValue } from '../errors.js';
import { writeFileAtomic } from './fs_sync.js';
import {
  checkLoadModelOptions, ModelFolderError, modelFromFolderFiles, modelToFolderFiles, type LoadedModel, type LoadModelOptions, type PretrainedModel,
} from './model_folder.js';

export interface SaveModelFolderOptions {
  /** Replace config.json / model.safetensors if they exist (default false: an error). */
  overwrite?: boolean;
}

/** Refuses a folder argument of `fn` that is not a non-empty string (before any work). */
function checkDir(dir: unknown, fn: string): void {
  if (typeof dir !== 'string' || dir === '') throw new ModelFolderError(`${fn}: dir must be a non-empty string (a folder path), got ${describeValue(dir)}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Writes `model` as a folder PyTorch loads (see src/io/model_folder.ts). */
export async function saveModelFolder(dir: string, model: PretrainedModel, options?: SaveModelFolderOptions): Promise<void> {
  checkDir(dir, 'saveModelFolder');
  const { overwrite = false } = checkOptions(options, ['overwrite'], 'saveModelFolder');
  if (typeof overwrite !== 'boolean') throw new ModelFolderError(`saveModelFolder: overwrite must be a boolean, got ${describeValue(overwrite)}`);
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ModelFolderError(`saveModelFolder: ${dir}: cannot use the folder (${(e as Error).message})`);
  }
  if (st && !st.isDirectory()) throw new ModelFolderError(`saveModelFolder: ${dir} exists and is not a folder`);
  const files = await modelToFolderFiles(model); // everything is read back before any file is touched
  const cfg = join(dir, 'config.json'), w = join(dir, 'model.safetensors');
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new ModelFolderError(`saveModelFolder: cannot create the folder ${dir} (${(e as Error).message})`);
  }
  if (!overwrite) {
    for (const p of [cfg, w]) if (await exists(p)) throw new ModelFolderError(`${p} exists; pass { overwrite: true } to replace it`);
  }
  await writeFileAtomic(w, files.weights);
  await writeFileAtomic(cfg, files.config);
}

/** Reads a model folder written here or by PyTorch code (Hugging Face layout for Llama/BERT, torchvision keys for ResNets). */
export async function loadModelFolder(dir: string, options?: LoadModelOptions): Promise<LoadedModel> {
  checkDir(dir, 'loadModelFolder');
  options = checkLoadModelOptions(options, 'loadModelFolder');
  const read = async (name: string): Promise<Buffer> => {
    try {
      return await readFile(join(dir, name));
    } catch (e) {
      throw new ModelFolderError(`${join(dir, name)}: cannot read (${(e as Error).message})`);
    }
  };
  // One after the other: a folder missing both files is reported by its config.json, every time.
  const config = await read('config.json');
  const weights = await read('model.safetensors');
  try {
    return modelFromFolderFiles({ config: config.toString('utf8'), weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.length) }, options);
  } catch (e) {
    if (e instanceof Error) e.message = `${dir}: ${e.message}`;
    throw e;
  }
}
