// Byte-level language-model data: text as UTF-8 bytes (vocabulary 256, no tokenizer to ship),
// split into train and validation parts, served as random windows [B, T] with next-byte targets.
import { InvalidArgumentError } from '../errors.js';
import type { Generator } from '../random.js';

/** One batch: ids [B, T] and targets [B, T] (targets[b, t] = ids[b, t + 1] in the text). */
export interface TokenBatch {
  ids: Int32Array;
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
}

export class ByteTextDataset {
  /** The vocabulary of byte-level models. */
  static readonly vocabSize = 256;
  readonly train: Uint8Array;
  readonly validation: Uint8Array;

  /** `validationFraction` of the bytes (the tail) are held out. */
  constructor(text: string | Uint8Array, validationFraction = 0.05) {
    const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    if (!(validationFraction >= 0 && validationFraction < 1)) throw new InvalidArgumentError(`validationFraction must be in [0, 1), got ${validationFraction}`);
    const cut = Math.floor(bytes.length * (1 - validationFraction));
    this.train = bytes.subarray(0, cut);
    this.validation = bytes.subarray(cut);
  }

  /** Refuses a split shorter than one window of `seqLen` (seqLen + 1 bytes: the ids and the next byte). */
  checkWindow(seqLen: number, split: 'train' | 'validation' = 'train'): void {
    const src = split === 'train' ? this.train : this.validation;
    if (src.length < seqLen + 1) throw new InvalidArgumentError(`the ${split} split has ${src.length} bytes, fewer than seqLen + 1 = ${seqLen + 1}`);
  }

  /** A batch of windows at random offsets of the chosen split, drawn from `generator`. */
  batch(generator: Generator, batchSize: number, seqLen: number, split: 'train' | 'validation' = 'train'): TokenBatch {
    this.checkWindow(seqLen, split);
    const src = split === 'train' ? this.train : this.validation;
    const ids = new Int32Array(batchSize * seqLen), targets = new Int32Array(batchSize * seqLen);
    for (let b = 0; b < batchSize; b++) {
      const start = generator.randint(src.length - seqLen);
      for (let t = 0; t < seqLen; t++) {
        ids[b * seqLen + t] = src[start + t];
        targets[b * seqLen + t] = src[start + t + 1];
      }
    }
    return { ids, targets, batchSize, seqLen };
  }
}
