// The same-run PyTorch peer of `npm run bench:train` (bench/torch_train.py): finds a Python with
// torch and runs the script for a TrainConfig. Used by bench/train.ts and tests/bench.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrainConfig } from '../src/train/language_model.js';

export const TORCH_TRAIN_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_train.py');

/** A Python that imports torch: its command, torch's version and whether CUDA is available to it. */
export interface TorchPython {
  python: string;
  version: string;
  cuda: boolean;
  device: string | null;
}

/**
 * The first of $MEMFIT_PYTHON, python3 and /usr/bin/python3 that imports torch, or the reasons
 * none did (one per candidate).
 */
export function findTorchPython(): TorchPython | { reasons: string[] } {
  const candidates = process.env.MEMFIT_PYTHON ? [process.env.MEMFIT_PYTHON] : ['python3', '/usr/bin/python3'];
  const probe = 'import json, torch; c = torch.cuda.is_available(); print(json.dumps({"version": torch.__version__, "cuda": c, "device": torch.cuda.get_device_name(0) if c else None}))';
  const reasons: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', probe], { encoding: 'utf8', timeout: 120_000 });
    if (r.error) { reasons.push(`${python}: ${r.error.message}`); continue; }
    if (r.status !== 0) { reasons.push(`${python}: ${(r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.status}`}`); continue; }
    const info = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Omit<TorchPython, 'python'>;
    return { python, ...info };
  }
  return { reasons };
}

/** One precision's result of bench/torch_train.py (the memory fields are null on CPU). */
export interface TorchPeerResult {
  precision: string;
  optimizer: string;
  /** Why this precision did not run (fp8 off a CUDA GPU of compute capability 8.9+, ...). */
  unavailable?: string;
  parameters?: number;
  steps?: number;
  stepMsMedian?: number;
  tokensPerSecond?: number;
  lossFirst?: number;
  lossLast?: number;
  peakAllocatedBytes?: number | null;
  peakBytesByCategory?: Record<'parameter' | 'gradient' | 'optimizer' | 'activation', number | null>;
  trainingForwardHeldBytes?: number | null;
  trainingForwardPeakBytes?: number | null;
  inferenceForwardPeakBytes?: number | null;
  float8Linears?: number;
}

/** The whole JSON object bench/torch_train.py prints. */
export interface TorchPeerOutput {
  torch: string;
  device: string;
  deviceType: 'cuda' | 'cpu';
  mode: string;
  tf32: boolean;
  attention: string;
  config: Record<string, unknown>;
  results: TorchPeerResult[];
}

/** The script's arguments for a TrainConfig (its model, batch, optimizer hyperparameters and seed). */
export function torchTrainArgs(config: TrainConfig, precisions: readonly string[], options: { steps: number; warmup: number; device: 'auto' | 'cuda' | 'cpu' }): string[] {
  const m = config.model;
  const args = [
    '--vocab', m.vocabSize, '--dim', m.hiddenSize, '--layers', m.numHiddenLayers, '--heads', m.numAttentionHeads, '--ffn', m.intermediateSize,
    '--batch', config.batchSize, '--seq', config.seqLen, '--rms-eps', m.rmsNormEps ?? 1e-6, '--rope-theta', m.ropeTheta ?? 10000,
    '--init-std', m.initializerRange ?? 0.02, '--lr', config.lr, '--weight-decay', config.weightDecay, '--max-grad-norm', config.maxGradNorm,
    '--seed', config.seed, '--precision', precisions.join(','), '--steps', options.steps, '--warmup', options.warmup, '--device', options.device,
  ].map(String);
  return m.tieWordEmbeddings ? [...args, '--tie'] : args;
}

/**
 * Runs bench/torch_train.py. Its log (stderr) goes to ours, or with `quiet` is kept for the error
 * message only. Throws with the script's last words when it fails.
 */
export function runTorchPeer(python: string, args: readonly string[], options: { timeoutMs?: number; quiet?: boolean } = {}): TorchPeerOutput {
  const r = spawnSync(python, [TORCH_TRAIN_SCRIPT, ...args], {
    encoding: 'utf8', timeout: options.timeoutMs ?? 1_200_000, stdio: ['ignore', 'pipe', options.quiet ? 'pipe' : 'inherit'], maxBuffer: 1 << 24,
  });
  if (r.error) throw new Error(`${python} ${TORCH_TRAIN_SCRIPT}: ${r.error.message}`);
  const last = (s: string | null) => (s ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0) {
    const why = last(r.stdout) || last(r.stderr);
    throw new Error(`${python} ${TORCH_TRAIN_SCRIPT} exited with ${r.status ?? r.signal}${why ? `: ${why}` : ''}`);
  }
  return JSON.parse(last(r.stdout)) as TorchPeerOutput;
}
