// The golden GradScaler run (tests/fixtures/golden/gradscaler.json), on any backend.
import { readFileSync } from 'node:fs';
import type { Backend } from '../../src/backend/backend.js';
import { Tensor, Variable, GradScaler, SGD, tidy, mul, sum, type GradScalerStateDict } from '../../src/index.js';

export const golden = JSON.parse(readFileSync(new URL('../fixtures/golden/gradscaler.json', import.meta.url), 'utf8')) as {
  init_scale: number; growth_factor: number; backoff_factor: number; growth_interval: number; lr: number;
  trace: { step: number; grad_kind: 'finite' | 'inf' | 'nan'; scale_after_update: number; param_changed: boolean; param0: number }[];
  state_dict_after: GradScalerStateDict; defaults: GradScalerStateDict;
};

/** The golden run: SGD lr 0.1 on sum(p * [1, 2, 3, 4]), the loss times inf or NaN where marked. */
export async function goldenRun(backend: Backend): Promise<{ scales: number[]; changed: boolean[]; param0: number[]; state: unknown }> {
  const p = new Variable(Tensor.from(backend, [1, 1, 1, 1], [4], { category: 'parameter' }), { requiresGrad: true });
  const w = new Variable(Tensor.from(backend, [1, 2, 3, 4], [4]));
  const opt = new SGD([p], { lr: golden.lr });
  const scaler = new GradScaler({ initScale: golden.init_scale, growthFactor: golden.growth_factor, backoffFactor: golden.backoff_factor, growthInterval: golden.growth_interval });
  const out = { scales: [] as number[], changed: [] as boolean[], param0: [] as number[], state: null as unknown };
  for (const row of golden.trace) {
    const before = await p.data.toArray();
    const bad = row.grad_kind === 'finite' ? null : new Variable(Tensor.from(backend, [row.grad_kind === 'inf' ? Infinity : NaN], []));
    const loss = tidy(() => (bad ? mul(sum(mul(p, w)), bad) : sum(mul(p, w))));
    const scaled = scaler.scale(loss);
    scaled.backward();
    scaler.step(opt);
    scaler.update();
    opt.zeroGrad();
    const after = await p.data.toArray();
    out.scales.push(await scaler.getScale());
    out.changed.push(after.some((x, i) => x !== before[i]));
    out.param0.push(after[0]);
    for (const v of [loss, scaled, bad]) v?.dispose();
  }
  out.state = await scaler.stateDict();
  scaler.dispose();
  opt.dispose();
  p.dispose();
  w.dispose();
  return out;
}
