#!/usr/bin/env python3
"""PyTorch reference fixtures for memfit's models (tests/fixtures/models/; CI only reads them).

Each model is built in PyTorch with fixed weights, run forward and backward on a fixed small batch,
and written as a model folder plus a reference file:

  <name>/config.json          the model's config (Hugging Face BertConfig / LlamaConfig fields; for
                              ResNets torchvision's resnet() arguments, see RESNET_CONFIG below)
  <name>/model.safetensors    the weights under PyTorch's own names (Hugging Face layout for
                              Llama/BERT: tied weights stored once, as save_pretrained does)
  <name>/reference.safetensors
      inputs, logits, loss, grad.<parameter name> for every parameter; for ResNets both train-mode
      (batch statistics; `running.<buffer>` = the running statistics after that forward) and
      eval-mode (`eval.*`) outputs and gradients.

Models:
  - resnet18_w8: torchvision's ResNet with BasicBlock [2, 2, 2, 2] (ResNet-18's blocks) at width 8
    (stem and layer1 8 channels instead of 64), 10 classes, input [2, 3, 64, 64].
  - resnet50_w8: Bottleneck [2, 1, 1, 1] at width 8 (ResNet-50's block with downsampling in every
    stage), 10 classes, input [2, 3, 64, 64].
  - resnet18_full.json (only this one with --resnet18-full): torchvision's full-size resnet18 with
    weights and input from a formula memfit recomputes bit for bit (tests/helpers/formula_weights.ts),
    so only results are stored: logits, loss, a digest of every gradient (a fixed sample of 32
    elements, sum, sum of squares) in float32 and float64, and the updated running statistics.
  - resnet_shapes.json: every state-dict key, shape and dtype of torchvision's full-size resnet18,
    resnet34, resnet50, resnet101 and resnet152 (no weights: 45-230 MB each).
  - llama_tiny: Hugging Face's Llama modeling code re-typed in plain PyTorch (below), 2 layers,
    hidden 32; a right-padded batch with an attention mask.
  - bert_tiny: Hugging Face's BertForMaskedLM re-typed in plain PyTorch (below), 2 layers, hidden
    32, token types, a right-padded batch, masked-LM labels.

The ResNets use torchvision's own BasicBlock, Bottleneck and ResNet (torchvision 0.28.0 for torch
2.13): the narrow width comes from a subclass that scales the `planes` torchvision passes to
_make_layer and rebuilds the stem and fc at that width (forward and blocks unchanged).

Run with PyTorch, torchvision, numpy and safetensors: python3 scripts/make-model-fixtures.py
(here: torch 2.13.0+cpu, torchvision 0.28.0, safetensors 0.8.0). The torchvision 0.28.0 wheel's
compiled ops need CUDA libraries; the models do not, so the script stubs the module that registers
those ops before importing torchvision.

A second mode checks folders written by memfit (tests/io/model_folder.test.ts writes them when
MEMFIT_WRITE_FOLDERS=dir is set): python3 scripts/make-model-fixtures.py --check dir
loads each folder into the PyTorch models here and compares the logits with the memfit-written
reference (max abs difference printed, exit 1 above 1e-4).
"""
import copy
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file, load_file

sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('torchvision._meta_registrations'))
import torchvision  # noqa: E402
from torchvision.models import resnet as tvr  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'models')
torch.use_deterministic_algorithms(True)


def rel_max_error(actual, expected):
    scale = expected.abs().max().item()
    err = (actual.double() - expected.double()).abs().max().item()
    return err / scale if scale > 0 else err


def f64_errors(model, run, prefix=''):
    """PyTorch float32's own error against float64: the same model and inputs in float64, run(model, dtype)
    -> (logits, loss) after backward. Returns `<prefix>f64err.<what>` scalars (max |f32 - f64| / max |f64|)
    for the logits, the loss and every parameter gradient; the tests bound memfit's error by them."""
    m32, m64 = model, copy.deepcopy(model).double()
    for m in (m32, m64):
        m.zero_grad()
    l32, s32 = run(m32, torch.float32)
    l64, s64 = run(m64, torch.float64)
    out = {f'{prefix}f64err.logits': rel_max_error(l32, l64), f'{prefix}f64err.loss': rel_max_error(s32.reshape(1), s64.reshape(1))}
    g64 = dict(m64.named_parameters())
    for k, p in m32.named_parameters():
        out[f'{prefix}f64err.grad.{k}'] = rel_max_error(p.grad, g64[k].grad)
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in out.items()}


# ---- ResNet (torchvision's definitions, narrow) ---------------------------------------------------

class NarrowResNet(tvr.ResNet):
    """torchvision.models.resnet.ResNet with `width` channels in the stem and layer1 (64 in torchvision)."""

    def __init__(self, block, layers, width, num_classes):
        self._scale = width / 64
        super().__init__(block, layers, num_classes=num_classes)
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        for m in (self.conv1,):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # layer1: the stem's width
            self.inplanes = int(64 * self._scale)
        return super()._make_layer(block, int(planes * self._scale), blocks, stride, dilate)


def perturb_bn(model, g):
    """Non-trivial batch-norm affine parameters and running statistics (the defaults are 1, 0, 0, 1)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(3)


def resnet_fixture(name, block, layers, width):
    g = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    model = NarrowResNet(block, layers, width, 10)
    perturb_bn(model, g)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 64, 64, generator=g)
    labels = torch.tensor([3, 7], dtype=torch.int64)
    ref = {'input': x, 'labels': labels.to(torch.int32)}

    model.train()
    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    ref['logits'] = logits.detach()
    ref['loss'] = loss.detach().reshape([])
    for k, p in model.named_parameters():
        ref[f'grad.{k}'] = p.grad.detach().clone()
    for k, b in model.named_buffers():
        ref[f'running.{k}'] = b.detach().clone().to(torch.int32) if b.dtype == torch.int64 else b.detach().clone()

    model.load_state_dict(state)
    model.eval()
    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    ref['eval.logits'] = logits.detach()
    ref['eval.loss'] = loss.detach().reshape([])
    for k, p in model.named_parameters():
        ref[f'eval.grad.{k}'] = p.grad.detach().clone()

    def run(mode):
        def go(m, dtype):
            m.load_state_dict(state)
            m.train(mode == 'train')
            logits = m(x.to(dtype))
            loss = F.cross_entropy(logits, labels)
            loss.backward()
            return logits.detach(), loss.detach()
        return go
    ref.update(f64_errors(model, run('train')))
    ref.update(f64_errors(model, run('eval'), 'eval.'))

    config = {
        'library': 'torchvision', 'architecture': 'resnet', 'block': 'basic' if block is tvr.BasicBlock else 'bottleneck',
        'layers': list(layers), 'num_classes': 10, 'groups': 1, 'width_per_group': 64, 'width': width,
    }
    write(name, config, state, ref)


def resnet_shapes():
    out = {}
    for name in ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152']:
        m = getattr(tvr, name)()
        out[name] = [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in m.state_dict().items()]
    with open(os.path.join(OUT, 'resnet_shapes.json'), 'w') as f:
        json.dump({'torchvision': torchvision.__version__.split('+')[0], 'models': out}, f, separators=(',', ':'))
        f.write('\n')


# ---- full-size ResNet-18 with weights from a formula ----------------------------------------------

def lowbias32(x):
    """Chris Wellons' lowbias32 integer hash on uint32 arrays (tests/helpers/formula_weights.ts: the same)."""
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x = (x * np.uint32(0x7feb352d)).astype(np.uint32)
    x ^= x >> np.uint32(15)
    x = (x * np.uint32(0x846ca68b)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    return x


def fnv1a32(text):
    h = 0x811c9dc5
    for b in text.encode('utf-8'):
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


def formula_values(key, n, bound, center=0.0):
    """n float32 values center + bound * (2u - 1), u = lowbias32(i * 0x9e3779b1 + fnv1a32(key)) >> 8 over 2^24,
    computed in float64 and rounded once: memfit computes the same bits without the fixture storing them."""
    i = np.arange(n, dtype=np.uint64)
    h = lowbias32(((i * np.uint64(0x9e3779b1) + np.uint64(fnv1a32(key))) & np.uint64(0xffffffff)).astype(np.uint32))
    u = (h >> np.uint32(8)).astype(np.float64) / 2.0 ** 24
    return (center + bound * (2.0 * u - 1.0)).astype(np.float32)


def formula_state(model):
    """Every parameter and buffer of a torchvision ResNet from formula_values: convolutions and fc
    U(-sqrt(6 / fan_in), +) (Kaiming uniform), batch-norm weight 1 +- 0.1, bias +- 0.1, running
    mean +- 0.1, running var 1 +- 0.5 (num_batches_tracked 0)."""
    out = {}
    for k, v in model.state_dict().items():
        n = v.numel()
        if k.endswith('num_batches_tracked'):
            out[k] = torch.zeros_like(v)
            continue
        if v.dim() >= 2:
            vals = formula_values(k, n, math.sqrt(6.0 / (v[0].numel())))
        elif k.startswith('fc.'):
            vals = formula_values(k, n, 1.0 / math.sqrt(512.0))
        elif k.endswith('running_var'):
            vals = formula_values(k, n, 0.5, 1.0)
        elif k.endswith('weight'):
            vals = formula_values(k, n, 0.1, 1.0)
        else:
            vals = formula_values(k, n, 0.1)
        out[k] = torch.from_numpy(vals.copy()).reshape(v.shape)
    return out


def grad_digest(g):
    """A fixed sample of 32 elements (index k * 7919 mod n), the sum and the sum of squares (float64)."""
    flat = g.detach().reshape(-1).double()
    n = flat.numel()
    idx = [(k * 7919) % n for k in range(min(32, n))]
    return {'sample': [flat[i].item() for i in idx], 'sum': flat.sum().item(), 'sumsq': (flat * flat).sum().item()}


def resnet18_full_fixture():
    """torchvision's resnet18 at full size (11.7M parameters, 1000 classes) on a [2, 3, 224, 224]
    batch, train mode. Weights and input come from formula_values, so the fixture holds only the
    results (JSON, about 100 kB): logits, loss, a digest of every gradient and of every updated
    running statistic, and PyTorch float32's own error against float64 for each."""
    model = tvr.resnet18()
    state = formula_state(model)
    x = torch.from_numpy(formula_values('input', 2 * 3 * 224 * 224, 1.0).copy()).reshape(2, 3, 224, 224)
    labels = torch.tensor([3, 907], dtype=torch.int64)
    res = {}
    for dtype in (torch.float32, torch.float64):
        m = tvr.resnet18().to(dtype)
        m.load_state_dict(state)
        m.train()
        logits = m(x.to(dtype))
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        res[dtype] = (logits.detach(), loss.detach(), dict(m.named_parameters()), dict(m.named_buffers()))
    (l32, s32, p32, b32), (l64, s64, p64, b64) = res[torch.float32], res[torch.float64]
    ref = {
        'library': 'torchvision', 'torchvision': torchvision.__version__.split('+')[0], 'torch': torch.__version__.split('+')[0],
        'model': 'resnet18', 'input_shape': [2, 3, 224, 224], 'labels': labels.tolist(),
        'logits': l32.reshape(-1).tolist(), 'loss': s32.item(),
        'f64err': {'logits': rel_max_error(l32, l64), 'loss': rel_max_error(s32.reshape(1), s64.reshape(1))},
        'grad': {k: grad_digest(p.grad) for k, p in p32.items()},
        'grad_f64': {k: grad_digest(p.grad) for k, p in p64.items()},
        'running': {k: grad_digest(b) for k, b in b32.items() if b.dtype != torch.int64},
    }
    with open(os.path.join(OUT, 'resnet18_full.json'), 'w') as f:
        json.dump(ref, f, separators=(',', ':'))
        f.write('\n')


# ---- Llama: transformers' modeling_llama, re-typed -----------------------------------------------

LLAMA = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
             max_position_embeddings=16, rms_norm_eps=1e-6, rope_theta=10000.0, initializer_range=0.1)


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.promote_types(input_dtype, torch.float32))  # float32 (float64 in the error reference)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, dim, base):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer('inv_freq', inv_freq, persistent=False)

    def forward(self, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_heads = c['num_attention_heads']
        self.head_dim = c['hidden_size'] // self.num_heads
        h = c['hidden_size']
        self.q_proj = nn.Linear(h, h, bias=False)
        self.k_proj = nn.Linear(h, h, bias=False)
        self.v_proj = nn.Linear(h, h, bias=False)
        self.o_proj = nn.Linear(h, h, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        shape = (b, t, self.num_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        w = F.softmax(w, dim=-1, dtype=torch.promote_types(q.dtype, torch.float32)).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(o)


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.up_proj = nn.Linear(c['hidden_size'], c['intermediate_size'], bias=False)
        self.down_proj = nn.Linear(c['intermediate_size'], c['hidden_size'], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = LlamaRMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.post_attention_layernorm = LlamaRMSNorm(c['hidden_size'], c['rms_norm_eps'])

    def forward(self, x, cos, sin, mask):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c['num_hidden_layers'])])
        self.norm = LlamaRMSNorm(c['hidden_size'], c['rms_norm_eps'])
        self.rotary_emb = LlamaRotaryEmbedding(c['hidden_size'] // c['num_attention_heads'], c['rope_theta'])

    def forward(self, ids, attention_mask):
        b, t = ids.shape
        h = self.embed_tokens(ids)
        pos = torch.arange(t)[None].expand(b, -1)
        cos, sin = self.rotary_emb(pos)
        minv = torch.finfo(torch.float32).min
        causal = torch.triu(torch.full((t, t), minv), diagonal=1)
        mask = causal[None, None] + (1.0 - attention_mask[:, None, None, :].float()) * minv
        mask = mask.clamp(min=minv)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return self.norm(h)


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c['hidden_size'], c['vocab_size'], bias=False)

    def forward(self, ids, attention_mask):
        return self.lm_head(self.model(ids, attention_mask))


def init_normal(model, std, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('norm.weight') or 'LayerNorm' in name or name.endswith('layernorm.weight'):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def llama_fixture():
    g = torch.Generator().manual_seed(99)
    c = LLAMA
    model = LlamaForCausalLM(c)
    init_normal(model, c['initializer_range'], g)
    ids = torch.randint(0, c['vocab_size'], (2, 10), generator=g)
    mask = torch.ones(2, 10, dtype=torch.int64)
    mask[1, 7:] = 0  # right padding
    targets = torch.cat([ids[:, 1:], torch.full((2, 1), -100)], dim=1)
    targets[mask == 0] = -100
    logits = model(ids, mask)
    loss = F.cross_entropy(logits.reshape(-1, c['vocab_size']), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    ref = {'input_ids': ids.to(torch.int32), 'attention_mask': mask.to(torch.int32), 'targets': targets.to(torch.int32),
           'logits': logits.detach(), 'loss': loss.detach().reshape([])}
    for k, p in model.named_parameters():
        ref[f'grad.{k}'] = p.grad.detach().clone()
    def go(m, dtype):
        lg = m(ids, mask)
        ls = F.cross_entropy(lg.reshape(-1, c['vocab_size']), targets.reshape(-1), ignore_index=-100)
        ls.backward()
        return lg.detach(), ls.detach()
    ref.update(f64_errors(model, go))
    config = {'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'hidden_act': 'silu', 'tie_word_embeddings': False,
              'num_key_value_heads': c['num_attention_heads'], 'torch_dtype': 'float32', **c}
    write('llama_tiny', config, {k: v.detach() for k, v in model.state_dict().items()}, ref)


# ---- BERT: transformers' modeling_bert (BertForMaskedLM), re-typed ---------------------------------

BERT = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            hidden_act='gelu', hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=16,
            type_vocab_size=2, initializer_range=0.1, layer_norm_eps=1e-12, pad_token_id=0)


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c['vocab_size'], c['hidden_size'], padding_idx=c['pad_token_id'])
        self.position_embeddings = nn.Embedding(c['max_position_embeddings'], c['hidden_size'])
        self.token_type_embeddings = nn.Embedding(c['type_vocab_size'], c['hidden_size'])
        self.LayerNorm = nn.LayerNorm(c['hidden_size'], eps=c['layer_norm_eps'])
        self.dropout = nn.Dropout(c['hidden_dropout_prob'])

    def forward(self, ids, token_type_ids):
        pos = torch.arange(ids.shape[1])[None]
        e = self.word_embeddings(ids) + self.token_type_embeddings(token_type_ids) + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(e))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_attention_heads = c['num_attention_heads']
        self.attention_head_size = c['hidden_size'] // self.num_attention_heads
        self.query = nn.Linear(c['hidden_size'], c['hidden_size'])
        self.key = nn.Linear(c['hidden_size'], c['hidden_size'])
        self.value = nn.Linear(c['hidden_size'], c['hidden_size'])
        self.dropout = nn.Dropout(c['attention_probs_dropout_prob'])

    def forward(self, x, mask):
        b, t, _ = x.shape
        split = lambda y: y.view(b, t, self.num_attention_heads, self.attention_head_size).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.attention_head_size) + mask
        probs = self.dropout(F.softmax(scores, dim=-1))
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, t, -1)


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['hidden_size'], c['hidden_size'])
        self.LayerNorm = nn.LayerNorm(c['hidden_size'], eps=c['layer_norm_eps'])
        self.dropout = nn.Dropout(c['hidden_dropout_prob'])

    def forward(self, h, x):
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['hidden_size'], c['intermediate_size'])

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['intermediate_size'], c['hidden_size'])
        self.LayerNorm = nn.LayerNorm(c['hidden_size'], eps=c['layer_norm_eps'])
        self.dropout = nn.Dropout(c['hidden_dropout_prob'])

    def forward(self, h, x):
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c['num_hidden_layers'])])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)

    def forward(self, ids, token_type_ids, attention_mask):
        ext = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        return self.encoder(self.embeddings(ids, token_type_ids), ext)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['hidden_size'], c['hidden_size'])
        self.LayerNorm = nn.LayerNorm(c['hidden_size'], eps=c['layer_norm_eps'])

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.decoder = nn.Linear(c['hidden_size'], c['vocab_size'], bias=False)
        self.bias = nn.Parameter(torch.zeros(c['vocab_size']))

    def forward(self, x):
        return self.decoder(self.transform(x)) + self.bias


class BertOnlyMLMHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = BertLMPredictionHead(c)

    def forward(self, x):
        return self.predictions(x)


class BertForMaskedLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bert = BertModel(c)
        self.cls = BertOnlyMLMHead(c)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight  # tied, as transformers ties them

    def forward(self, ids, token_type_ids, attention_mask):
        return self.cls(self.bert(ids, token_type_ids, attention_mask))


def bert_fixture():
    g = torch.Generator().manual_seed(7)
    c = BERT
    model = BertForMaskedLM(c)
    init_normal(model, c['initializer_range'], g)
    ids = torch.randint(1, c['vocab_size'], (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.int64)
    mask[1, 6:] = 0
    ids[1, 6:] = 0  # [PAD]
    tt = torch.zeros(2, 9, dtype=torch.int64)
    tt[:, 5:] = 1
    labels = torch.full((2, 9), -100)
    labels[0, [1, 4, 7]] = torch.randint(0, c['vocab_size'], (3,), generator=g)
    labels[1, [2, 3]] = torch.randint(0, c['vocab_size'], (2,), generator=g)
    logits = model(ids, tt, mask)
    loss = F.cross_entropy(logits.reshape(-1, c['vocab_size']), labels.reshape(-1), ignore_index=-100)
    loss.backward()
    ref = {'input_ids': ids.to(torch.int32), 'token_type_ids': tt.to(torch.int32), 'attention_mask': mask.to(torch.int32),
           'labels': labels.to(torch.int32), 'logits': logits.detach(), 'loss': loss.detach().reshape([])}
    for k, p in model.named_parameters():  # each parameter once: the tied decoder weight is word_embeddings
        ref[f'grad.{k}'] = p.grad.detach().clone()
    def go(m, dtype):
        lg = m(ids, tt, mask)
        ls = F.cross_entropy(lg.reshape(-1, c['vocab_size']), labels.reshape(-1), ignore_index=-100)
        ls.backward()
        return lg.detach(), ls.detach()
    ref.update(f64_errors(model, go))
    state = {k: v.detach() for k, v in model.state_dict().items() if k != 'cls.predictions.decoder.weight'}
    config = {'architectures': ['BertForMaskedLM'], 'model_type': 'bert', 'position_embedding_type': 'absolute',
              'torch_dtype': 'float32', **c}
    write('bert_tiny', config, state, ref)


# ---- files ------------------------------------------------------------------------------------------

def write(name, config, state, ref):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write('\n')
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(d, 'model.safetensors'), metadata={'format': 'pt'})
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(d, 'reference.safetensors'))
    print(name, sum(v.numel() for v in state.values()), 'weights')


# ---- checking memfit-written folders -----------------------------------------------------------------

def check(root):
    worst = 0.0
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, 'config.json')):
            continue
        cfg = json.load(open(os.path.join(d, 'config.json')))
        sd = load_file(os.path.join(d, 'model.safetensors'))
        ref = load_file(os.path.join(d, 'memfit_outputs.safetensors'))
        if cfg.get('library') == 'torchvision':
            block = tvr.BasicBlock if cfg['block'] == 'basic' else tvr.Bottleneck
            if cfg['architecture'] in ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'):
                m = getattr(tvr, cfg['architecture'])(num_classes=cfg['num_classes'])  # torchvision.models.resnet18(...)
            elif cfg['width'] != 64:
                m = NarrowResNet(block, cfg['layers'], cfg['width'], cfg['num_classes'])
            else:
                m = tvr.ResNet(block, cfg['layers'], num_classes=cfg['num_classes'])
            m.load_state_dict(sd, strict=True)
            m.eval()
            out = m(ref['input'])
        elif cfg['model_type'] == 'llama':
            c = {k: cfg[k] for k in LLAMA}
            m = LlamaForCausalLM(c)
            m.load_state_dict(sd, strict=True)
            out = m(ref['input_ids'].long(), ref['attention_mask'].long())
        elif cfg['model_type'] == 'bert':
            c = {k: cfg[k] for k in BERT}
            m = BertForMaskedLM(c)
            missing, unexpected = m.load_state_dict(sd, strict=False)
            assert missing == ['cls.predictions.decoder.weight'] and not unexpected, (missing, unexpected)
            out = m(ref['input_ids'].long(), ref['token_type_ids'].long(), ref['attention_mask'].long())
        else:
            raise SystemExit(f'{name}: unknown config')
        diff = (out.detach() - ref['logits']).abs().max().item()
        worst = max(worst, diff)
        print(f'{name}: {len(sd)} tensors loaded strictly into the PyTorch model; max |logits - memfit logits| = {diff:.3g}')
    if worst > 1e-4:
        raise SystemExit(f'difference {worst} above 1e-4')


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--check':
        check(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == '--resnet18-full':
        resnet18_full_fixture()
    else:
        os.makedirs(OUT, exist_ok=True)
        resnet_fixture('resnet18_w8', tvr.BasicBlock, [2, 2, 2, 2], 8)
        resnet_fixture('resnet50_w8', tvr.Bottleneck, [2, 1, 1, 1], 8)
        resnet_shapes()
        llama_fixture()
        bert_fixture()
