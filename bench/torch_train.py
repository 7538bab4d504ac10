#!/usr/bin/env python3
# The same-run PyTorch peer of `npm run bench:train` (bench/train.ts runs it; bench/torch_peer.ts).
# PyTorch eager (no torch.compile) training of the same model as memfit's Llama (src/nn/llama.ts,
# Hugging Face's LlamaForCausalLM): token embedding, N x [RMSNorm -> causal multi-head attention
# with rotary position encoding (rotate_half, theta 10000), no biases -> residual, RMSNorm -> SwiGLU
# MLP -> residual], final RMSNorm, an untied LM head (or tied with --tie); weights normal(0, 0.02),
# norm weights 1. The step is LanguageModelTrainer's (src/train/language_model.ts): forward, mean
# next-token cross-entropy (logits upcast to float32, as Hugging Face's loss does), backward,
# clip_grad_norm_ to --max-grad-norm, torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, weight decay on
# matrices only, the foreach implementation that is PyTorch's default), zero_grad(set_to_none=True),
# then the loss read back (.item()). The learning-rate schedule does not change the speed: the lr is
# constant. Data: random token ids of the vocabulary from a seeded generator.
#
# Precisions (PyTorch Lightning's names): 32-true (float32; TF32 matmuls and convolutions switched
# off), bf16-mixed and 16-mixed (float32 weights, torch.autocast; 16-mixed with a GradScaler), fp8
# (torchao's Float8Linear with tensorwise current scaling, written here as Float8Linear since
# torchao may be missing: forward operands float8_e4m3fn, the output gradient float8_e5m2, the three
# matmuls through torch._scaled_mm with float32 accumulation (use_fast_accum=False), the fp8 codes
# of input and weight saved for backward; every Linear but the LM head; the rest under bfloat16
# autocast). fp8 needs CUDA with compute capability 8.9 or more and torch._scaled_mm; elsewhere its
# result says why it is unavailable. (memfit's trainer runs 'fp8' with convertToFloat8Training's
# default recipe, Transformer Engine's delayed scaling; the peer scales from each tensor's own
# amax, as torchao and Accelerate's torchao backend do by default.)
#
# Measured per precision: warm-up steps, then the median step time (torch.cuda.synchronize after
# each step), tokens/s, torch.cuda.max_memory_allocated over the timed steps, peak bytes by
# category (parameters, gradients and optimizer state from their tensors' sizes; activations: the
# rest of the peak), the bytes a training forward holds (memory_allocated after the loss minus
# before, memfit's trainingForwardHeldBytes), the training and inference forwards' peaks over that
# base. On CPU (for tests) the memory figures PyTorch cannot measure there are null.
# Output: one JSON object on stdout; logs on stderr. Runs on torch 1.13 to 2.x.
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRECISIONS = ('32-true', 'bf16-mixed', '16-mixed', 'fp8')


def log(msg):
    sys.stderr.write('[torch_train] %s\n' % msg)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):  # LlamaRMSNorm: float32 inside, the input's dtype out
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def causal_attention(q, k, v):
    if hasattr(F, 'scaled_dot_product_attention'):  # torch >= 2.0, as Hugging Face's sdpa attention
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[-2]  # torch 1.13: the same math
    s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    s = s.masked_fill(~mask, float('-inf'))
    return torch.softmax(s.float(), dim=-1).to(q.dtype) @ v


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        split = lambda y: y.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        cq, sq = cos[:t].to(q.dtype), sin[:t].to(q.dtype)
        q = q * cq + rotate_half(q) * sq
        k = k * cq + rotate_half(k) * sq
        y = causal_attention(q, k, v)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.gate_proj = nn.Linear(dim, ffn, bias=False)
        self.up_proj = nn.Linear(dim, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.input_layernorm = RMSNorm(a.dim, a.rms_eps)
        self.self_attn = Attention(a.dim, a.heads)
        self.post_attention_layernorm = RMSNorm(a.dim, a.rms_eps)
        self.mlp = MLP(a.dim, a.ffn)

    def forward(self, x, cos, sin):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList([Layer(a) for _ in range(a.layers)])
        self.norm = RMSNorm(a.dim, a.rms_eps)
        self.lm_head = None if a.tie else nn.Linear(a.dim, a.vocab, bias=False)
        d = a.dim // a.heads
        inv_freq = 1.0 / (a.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        freqs = torch.outer(torch.arange(a.seq, dtype=torch.float64), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer('cos', emb.cos().float(), persistent=False)
        self.register_buffer('sin', emb.sin().float(), persistent=False)
        for m in self.modules():  # Hugging Face's _init_weights
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=a.init_std)

    def forward(self, ids):
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h, self.cos, self.sin)
        h = self.norm(h)
        return self.lm_head(h) if self.lm_head is not None else h @ self.embed_tokens.weight.t()

    def loss(self, ids, targets):
        logits = self.forward(ids)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


# ---- fp8 (torchao's Float8Linear, tensorwise current scaling) ----

def fp8_unavailable(device, a=None):
    if not hasattr(torch, 'float8_e4m3fn') or not hasattr(torch, '_scaled_mm'):
        return 'torch %s has no float8 dtypes or torch._scaled_mm' % torch.__version__
    if device.type != 'cuda':
        return 'fp8 needs a CUDA GPU (torch._scaled_mm); the device is %s' % device.type
    cap = torch.cuda.get_device_capability(device)
    if cap < (8, 9):
        return 'fp8 needs compute capability 8.9 or more (Ada, Hopper); this GPU has %d.%d' % cap
    if a is not None and any(n % 16 for n in (a.dim, a.ffn, a.batch * a.seq)):
        return 'torch._scaled_mm needs --dim, --ffn and --batch x --seq to be multiples of 16'
    return None


def to_fp8(x, dtype):
    """x quantized tensorwise: saturate(fp8(x * scale)), scale = max / amax, and 1 / scale."""
    fmax = torch.finfo(dtype).max
    amax = x.detach().abs().max().float()
    scale = fmax / torch.clamp(amax, min=1e-12)
    q = (x.float() * scale).clamp(-fmax, fmax).to(dtype)
    return q, scale.reciprocal()


def scaled_mm(a, b, sa, sb, out_dtype):
    r = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=out_dtype, use_fast_accum=False)
    return r[0] if isinstance(r, tuple) else r  # torch 2.1 to 2.3 return (out, amax)


def row_major(x):
    return x.contiguous()


def col_major(x):
    return x.t().contiguous().t()


class Float8Matmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, out_dtype):
        xq, xs = to_fp8(x, torch.float8_e4m3fn)
        wq, ws = to_fp8(w, torch.float8_e4m3fn)
        ctx.save_for_backward(xq, xs, wq, ws)
        ctx.x_dtype, ctx.w_dtype = x.dtype, w.dtype
        return scaled_mm(xq, wq.t(), xs, ws, out_dtype)  # y = x W^T: [M, K] row-major x [K, N] column-major

    @staticmethod
    def backward(ctx, gy):
        xq, xs, wq, ws = ctx.saved_tensors
        gq, gs = to_fp8(gy, torch.float8_e5m2)
        gx = scaled_mm(row_major(gq), col_major(wq), gs, ws, ctx.x_dtype)  # dX = dY W
        gw = scaled_mm(row_major(gq.t()), col_major(xq), gs, xs, ctx.w_dtype)  # dW = dY^T X
        return gx, gw, None


class Float8Linear(nn.Linear):
    def forward(self, x):
        if torch.is_autocast_enabled():  # fp8 runs on CUDA only
            out_dtype = torch.get_autocast_dtype('cuda') if hasattr(torch, 'get_autocast_dtype') else torch.get_autocast_gpu_dtype()
        else:
            out_dtype = x.dtype
        shape = x.shape
        y = Float8Matmul.apply(x.reshape(-1, shape[-1]), self.weight, out_dtype)
        return y.view(*shape[:-1], y.shape[-1])


def convert_to_float8(model):
    n = 0
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            full = (name + '.' if name else '') + child_name
            if type(child) is nn.Linear and full != 'lm_head':
                f = Float8Linear(child.in_features, child.out_features, bias=False, device=child.weight.device)
                f.weight = child.weight
                setattr(m, child_name, f)
                n += 1
    return n


# ---- the run ----

def tensor_bytes(ts):
    return sum(t.numel() * t.element_size() for t in ts)


def run_precision(a, precision, device, n_steps):
    cuda = device.type == 'cuda'
    torch.manual_seed(a.seed)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    res = {'precision': precision, 'optimizer': 'adamw'}
    if precision == 'fp8':
        why = fp8_unavailable(device, a)
        if why:
            res['unavailable'] = why
            return res
    model = Llama(a).to(device)
    if precision == 'fp8':
        res['float8Linears'] = convert_to_float8(model)
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': a.weight_decay}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    amp_dtype = {'bf16-mixed': torch.bfloat16, 'fp8': torch.bfloat16, '16-mixed': torch.float16}.get(precision)
    scaler = None
    if precision == '16-mixed':
        if cuda:
            scaler = torch.amp.GradScaler('cuda') if hasattr(torch.amp, 'GradScaler') else torch.cuda.amp.GradScaler()
        if scaler is None:
            res['unavailable'] = '16-mixed needs CUDA here (a GradScaler)'
            return res

    def autocast():
        if amp_dtype is None:
            return torch.autocast(device_type=device.type, enabled=False)
        return torch.autocast(device_type=device.type, dtype=amp_dtype)

    gen = torch.Generator().manual_seed(a.seed + 1)

    def batch():
        ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
        ids = ids.to(device)
        return ids[:, :-1], ids[:, 1:]

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def step():
        ids, targets = batch()
        with autocast():
            loss = model.loss(ids, targets)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if a.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    losses, ms = [], []
    for i in range(a.warmup + n_steps):
        if i == a.warmup and cuda:
            sync()
            torch.cuda.reset_peak_memory_stats(device)
        sync()
        t0 = time.perf_counter()
        losses.append(step())
        sync()
        if i >= a.warmup:
            ms.append((time.perf_counter() - t0) * 1000)
    step_ms = statistics.median(ms)
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    param_bytes = tensor_bytes(params)
    grad_bytes = param_bytes  # float32 gradients of float32 parameters (freed by zero_grad; counted at full size)
    opt_bytes = tensor_bytes([v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)])
    # A training forward's held bytes, its peak and an inference forward's peak over the same base.
    ids, targets = batch()
    sync()
    held = fwd_peak = inf_peak = None
    if cuda:
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    with autocast():
        loss = model.loss(ids, targets)
    sync()
    if cuda:
        held = torch.cuda.memory_allocated(device) - base
        fwd_peak = torch.cuda.max_memory_allocated(device) - base
    del loss
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), autocast():
        loss = model.loss(ids, targets)
    sync()
    if cuda:
        inf_peak = torch.cuda.max_memory_allocated(device) - base
    del loss
    tokens = a.batch * a.seq
    res.update({
        'parameters': sum(p.numel() for p in params),
        'steps': len(ms),
        'warmupSteps': a.warmup,
        'stepMsMedian': round(step_ms, 4),
        'tokensPerSecond': round(tokens / (step_ms / 1000), 1),
        'lossFirst': losses[0],
        'lossLast': losses[-1],
        'peakAllocatedBytes': peak,
        'peakBytesByCategory': {
            'parameter': param_bytes, 'gradient': grad_bytes, 'optimizer': opt_bytes,
            'activation': None if peak is None else peak - param_bytes - grad_bytes - opt_bytes,
        },
        'trainingForwardHeldBytes': held,
        'trainingForwardPeakBytes': fwd_peak,
        'inferenceForwardPeakBytes': inf_peak,
    })
    del model, opt, params, decay, no_decay
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description='PyTorch eager peer of memfit bench:train (one JSON object on stdout)')
    p.add_argument('--vocab', type=int, required=True)
    p.add_argument('--dim', type=int, required=True)
    p.add_argument('--layers', type=int, required=True)
    p.add_argument('--heads', type=int, required=True)
    p.add_argument('--ffn', type=int, required=True)
    p.add_argument('--batch', type=int, required=True)
    p.add_argument('--seq', type=int, required=True)
    p.add_argument('--rms-eps', type=float, default=1e-6)
    p.add_argument('--rope-theta', type=float, default=10000.0)
    p.add_argument('--init-std', type=float, default=0.02)
    p.add_argument('--tie', action='store_true', help='tie the LM head to the embedding')
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--weight-decay', type=float, default=0.01)
    p.add_argument('--max-grad-norm', type=float, default=1.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--precision', default='32-true', help='comma-separated: ' + ', '.join(PRECISIONS))
    p.add_argument('--steps', type=int, default=30)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--device', default='auto', help='auto (cuda when available), cuda or cpu')
    a = p.parse_args(argv)
    precisions = a.precision.split(',')
    for x in precisions:
        if x not in PRECISIONS:
            p.error('--precision takes a comma-separated list of %s; got %s' % (', '.join(PRECISIONS), x))
    if a.dim % a.heads or (a.dim // a.heads) % 2:
        p.error('--dim must be a multiple of --heads with an even head dim')
    if a.device == 'cuda' and not torch.cuda.is_available():
        print(json.dumps({'error': 'CUDA is not available to torch %s' % torch.__version__}))
        return 3
    device = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else 'cpu' if a.device == 'auto' else a.device)
    # 32-true means float32 matmuls: no TF32 (PyTorch's matmul default is already off; cuDNN's is on).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out = {
        'torch': torch.__version__,
        'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        'deviceType': device.type,
        'mode': 'eager',
        'tf32': False,
        'attention': 'scaled_dot_product_attention' if hasattr(F, 'scaled_dot_product_attention') else 'math (torch < 2.0)',
        'config': {'vocab': a.vocab, 'dim': a.dim, 'layers': a.layers, 'heads': a.heads, 'ffn': a.ffn, 'batch': a.batch, 'seq': a.seq, 'tie': a.tie},
        'results': [],
    }
    log('torch %s on %s, TF32 off, eager' % (torch.__version__, out['device']))
    for x in precisions:
        log('%s ...' % x)
        r = run_precision(a, x, device, a.steps)
        if 'unavailable' in r:
            log('%s unavailable: %s' % (x, r['unavailable']))
        else:
            log('%s: %.2f ms/step, %.0f tokens/s' % (x, r['stepMsMedian'], r['tokensPerSecond']))
        out['results'].append(r)
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
