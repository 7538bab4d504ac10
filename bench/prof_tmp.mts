import { WasmBackend } from '../src/backend/wasm/backend.js';
import { Tensor } from '../src/tensor/tensor.js';
const be = new WasmBackend();
const n = 1024 * 704;
const mk = (seed: number) => Tensor.from(be, Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed)), [1024, 704]);
const a = mk(1), b = mk(2), ah = a.to('bfloat16'), bh = b.to('bfloat16');
const oh = Tensor.empty(be, [1024, 704], { dtype: 'bfloat16' }), of = Tensor.empty(be, [1024, 704]);
const time = (what: string, f: () => void, reps = 30) => { f(); const t0 = performance.now(); for (let i = 0; i < reps; i++) f(); console.log(what.padEnd(28), ((performance.now() - t0) / reps).toFixed(3), 'ms'); };
for (let r = 0; r < 2; r++) {
time('mul f32', () => be.binary('mul', a, b, of));
time('mul bf16->bf16', () => be.binary('mul', ah, bh, oh));
time('silu f32', () => be.unary('silu', a, of));
time('silu bf16', () => be.unary('silu', ah, oh));
}
time('cast f32->bf16 RNE', () => be.cast(a, oh));
time('cast bf16->f32', () => be.cast(ah, of));
time('cast f32->f16 RNE', () => be.cast(a, Tensor.empty(be, [1024, 704], { dtype: 'float16' })));
