// Model folders that PyTorch code loads directly, and that load here: `config.json` +
// `model.safetensors`. Llama and BERT use the Hugging Face layout (transformers' config fields and
// state-dict keys, tied weights stored once), so `LlamaForCausalLM.from_pretrained(dir)` and
// `BertForMaskedLM.from_pretrained(dir)` read them; ResNets use torchvision's state-dict keys
// (`torchvision.models.resnet50(num_classes=...)` + `load_state_dict(load_file(...))`) with a
// config.json that records torchvision's resnet() arguments. Browser-safe: bytes in, bytes out
// (src/io/model_folder_file.ts reads and writes the files in Node).
import { checkOptions, InvalidArgumentError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import { Tensor } from '../tensor/tensor.js';
import { defaultBackend } from '../nn/layers.js';
import { Llama, type LlamaConfig } from '../nn/llama.js';
import { hfKeyToMemfit, llamaConfigFromHf, memfitKeyToHf } from '../nn/hf_llama.js';
import { BertForMaskedLM } from '../nn/bert.js';
import { bertConfigFromHf, bertConfigToHf, hfBertKeyToMemfit, memfitBertKeyToHf } from '../nn/hf_bert.js';
import { RESNET_CONFIGS, ResNet, type ResNetConfig } from '../nn/resnet.js';
import type { Generator } from '../random.js';
import {
  checkBackend, parseSafetensors, planSafetensors, rawToTensor, readTensorBytes, SafetensorsError, type FileTensorSpec, type RawTensorSpec,
} from './safetensors.js';

/** The models a folder holds. */
export type PretrainedModel = Llama | BertForMaskedLM | ResNet;

/** The two files of a model folder. */
export interface ModelFolderFiles {
  /** config.json's text. */
  config: string;
  /** model.safetensors' bytes. */
  weights: Uint8Array;
}

export interface LoadModelOptions {
  backend?: Backend;
  generator?: Generator;
}

/** A loaded model and the checkpoint keys it had no use for (tied duplicates, poolers, ...). */
export interface LoadedModel {
  model: PretrainedModel;
  /** 'llama' | 'bert' | 'resnet'. */
  kind: 'llama' | 'bert' | 'resnet';
  droppedKeys: string[];
}

export class ModelFolderError extends InvalidArgumentError {}

/** Checks the options of `fn` (known keys only; backend a Backend) and returns them with the backend filled in. */
export function checkLoadModelOptions(options: LoadModelOptions | undefined, fn: string): LoadModelOptions & { backend: Backend } {
  const o = checkOptions(options, ['backend', 'generator'], fn);
  if (o.backend !== undefined) checkBackend(o.backend, fn);
  return { ...o, backend: o.backend ?? defaultBackend() };
}

// ---- configs -------------------------------------------------------------------------------------

function llamaConfigToHf(c: Required<LlamaConfig>): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', attention_bias: false, mlp_bias: false, torch_dtype: 'float32',
    vocab_size: c.vocabSize, hidden_size: c.hiddenSize, num_hidden_layers: c.numHiddenLayers, num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads, intermediate_size: c.intermediateSize, max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps, rope_theta: c.ropeTheta, tie_word_embeddings: c.tieWordEmbeddings, initializer_range: c.initializerRange,
  };
}

function resnetConfigToJson(c: Required<ResNetConfig>): Record<string, unknown> {
  const named = Object.entries(RESNET_CONFIGS).find(([, v]) => v.block === c.block && v.layers.join() === c.layers.join());
  return {
    library: 'torchvision', architecture: named && c.width === 64 ? named[0] : 'resnet', block: c.block, layers: [...c.layers], num_classes: c.numClasses,
    groups: c.groups, width_per_group: c.widthPerGroup, width: c.width,
  };
}

function resnetConfigFromJson(j: Record<string, unknown>): ResNetConfig {
  const layers = j.layers;
  if (j.block !== 'basic' && j.block !== 'bottleneck') throw new ModelFolderError(`config.json: block must be "basic" or "bottleneck", got ${JSON.stringify(j.block)}`);
  if (!Array.isArray(layers) || layers.length !== 4) throw new ModelFolderError('config.json: layers must list 4 block counts');
  const num = (k: string, d: number): number => {
    const v = j[k] ?? d;
    if (typeof v !== 'number') throw new ModelFolderError(`config.json: ${k} must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    block: j.block, layers: layers as unknown as [number, number, number, number], numClasses: num('num_classes', 1000),
    groups: num('groups', 1), widthPerGroup: num('width_per_group', 64), width: num('width', 64),
  };
}

// ---- saving ----------------------------------------------------------------------------------------

/** Which keys, names and file dtypes a model's tensors are written under. */
function exportedTensors(model: PretrainedModel): [string, Tensor][] {
  const sd = model.stateDict();
  if (model instanceof Llama) return Object.entries(sd).map(([k, t]) => [memfitKeyToHf(k), t]);
  if (model instanceof BertForMaskedLM) return Object.entries(sd).map(([k, t]) => [memfitBertKeyToHf(k), t]);
  return Object.entries(sd);
}

function configOf(model: PretrainedModel): Record<string, unknown> {
  if (model instanceof Llama) return llamaConfigToHf(model.config);
  if (model instanceof BertForMaskedLM) return bertConfigToHf(model.config);
  if (model instanceof ResNet) return resnetConfigToJson(model.config);
  throw new ModelFolderError(`cannot save a ${(model as object)?.constructor?.name ?? typeof model}: a model folder holds a Llama, a BertForMaskedLM or a ResNet`);
}

/**
 * The files of a model folder for `model`. ResNet's num_batches_tracked buffers (int32 here) are
 * written as I64, torchvision's dtype; every other tensor in its own dtype.
 */
export async function modelToFolderFiles(model: PretrainedModel): Promise<ModelFolderFiles> {
  const config = `${JSON.stringify(configOf(model), null, 2)}\n`;
  const list = exportedTensors(model);
  const i64 = (k: string, t: Tensor): boolean => model instanceof ResNet && t.dtype === 'int32' && /(^|\.)num_batches_tracked$/.test(k);
  const specs = list.map(([k, t]): [string, RawTensorSpec | FileTensorSpec] => (i64(k, t) ? [k, { fileDType: 'I64', fileShape: t.shape }] : [k, t]));
  const layout = planSafetensors(specs, { format: 'pt' });
  const out = new Uint8Array(layout.byteLength);
  out.set(layout.header);
  const byName = new Map(list);
  for (const { name, begin } of layout.order) {
    const t = byName.get(name)!;
    let bytes = await readTensorBytes(t);
    if (i64(name, t)) {
      const v = new Int32Array(bytes.buffer, bytes.byteOffset, t.size);
      bytes = new Uint8Array(BigInt64Array.from(v, (x) => BigInt(x)).buffer);
    }
    out.set(bytes, layout.header.length + begin);
  }
  return { config, weights: out };
}

// ---- loading ---------------------------------------------------------------------------------------

/**
 * Tensors of a safetensors file on `backend` ('parameter' category), I64 tensors (num_batches_tracked
 * from PyTorch) as int32 when every value fits.
 */
export function weightsToTensors(bytes: Uint8Array, backend: Backend): Record<string, Tensor> {
  const parsed = parseSafetensors(bytes);
  const out: Record<string, Tensor> = {};
  try {
    for (const [name, t] of parsed.tensors) {
      if (t.memfit) {
        out[name] = rawToTensor(backend, name, { dtype: t.memfit.dtype, shape: t.memfit.shape, bytes: t.bytes }, 'parameter');
      } else if (t.dtype === 'I64') {
        const n = t.bytes.length / 8;
        const v = new BigInt64Array(t.bytes.slice().buffer, 0, n);
        const i32 = Int32Array.from(v, (x) => {
          if (x > 2147483647n || x < -2147483648n) throw new SafetensorsError(`I64 tensor '${name}' holds ${x}, outside int32 (memfit's integer dtype)`, { tensor: name });
          return Number(x);
        });
        out[name] = Tensor.from(backend, i32, t.shape, { dtype: 'int32', category: 'parameter', label: name });
      } else {
        throw new SafetensorsError(`${t.unsupported ?? `unsupported dtype ${t.dtype}`} for tensor '${name}'`, { tensor: name });
      }
    }
  } catch (e) {
    for (const t of Object.values(out)) t.dispose();
    throw e;
  }
  return out;
}

function parseConfig(text: string): Record<string, unknown> {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(`config.json is not valid JSON: ${(e as Error).message}`);
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new ModelFolderError('config.json must hold a JSON object');
  return j as Record<string, unknown>;
}

/** The model a folder's config describes (fresh weights; not yet loaded). */
export function modelFromConfig(configText: string, options?: LoadModelOptions): { model: PretrainedModel; kind: LoadedModel['kind'] } {
  const { backend, generator } = checkLoadModelOptions(options, 'modelFromConfig');
  const j = parseConfig(configText);
  const o = { backend, generator };
  if (j.model_type === 'llama') return { model: new Llama(llamaConfigFromHf(j), o), kind: 'llama' };
  if (j.model_type === 'bert') return { model: new BertForMaskedLM(bertConfigFromHf(j), o), kind: 'bert' };
  if (j.library === 'torchvision') return { model: new ResNet(resnetConfigFromJson(j), o), kind: 'resnet' };
  throw new ModelFolderError(`config.json: unknown model (model_type ${JSON.stringify(j.model_type)}; memfit reads "llama", "bert" and torchvision ResNets)`);
}

/**
 * A model from a folder's files: built from config.json, weights loaded strictly by name (keys
 * mapped from transformers' / torchvision's names; tied duplicates and heads the model lacks are
 * reported in droppedKeys). Throws naming every missing and unexpected key.
 */
export function modelFromFolderFiles(files: ModelFolderFiles, options?: LoadModelOptions): LoadedModel {
  options = checkLoadModelOptions(options, 'modelFromFolderFiles');
  const { model, kind } = modelFromConfig(files.config, options);
  let tensors: Record<string, Tensor> = {};
  try {
    tensors = weightsToTensors(files.weights, options.backend!);
    const sd: Record<string, Tensor> = {};
    const droppedKeys: string[] = [];
    for (const [k, t] of Object.entries(tensors)) {
      const m = kind === 'llama' ? hfKeyToMemfit(k) : kind === 'bert' ? hfBertKeyToMemfit(k) : k;
      if (m === null) droppedKeys.push(k);
      else sd[m] = t;
    }
    if (kind === 'llama' && (model as Llama).config.tieWordEmbeddings && 'lmHead.weight' in sd) { // a tied checkpoint that stored both
      droppedKeys.push('lm_head.weight');
      delete sd['lmHead.weight'];
    }
    model.loadStateDict(sd);
    return { model, kind, droppedKeys };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
