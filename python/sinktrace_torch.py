"""sinktrace_torch: the sinktrace model in PyTorch, built from a `bin/export` file.

Written from docs/MODEL.md (the guided tour of the model), not translated from model/moe.c;
tests/test_torch.c checks that both compute the same logits, losses, gradients, attention and residual
stream. Needs only torch and numpy (Debian: python3-torch, python3-numpy).

    import sinktrace_torch as st
    model, run = st.load("runs/default/model.safetensors")
    out = model(run.probe_tokens("natural"), capture=True)
    print(st.a_p0(out.attn), st.rho(out.resid))   # attention on P0 per layer and head, rho per residual point

Shapes as in docs/MODEL.md: B sequences of T tokens, C = d_model, H query heads and KV key/value heads of D
channels, E experts with top-k routing and F hidden units, V = vocab, L = blocks. Parameter names are the
C model's (`blocks.3.attn.wq`), so `model.state_dict()` is the exported file's tensors.
"""
import json
import math
import struct
from dataclasses import MISSING, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ---- the file -------------------------------------------------------------------------------------

DTYPES = {"F64": "<f8", "F32": "<f4", "I32": "<i4", "U8": "u1"}


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file: numpy arrays by name, and the __metadata__ strings.
    A file that is not one raises ValueError with one line naming the file and what is wrong."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: truncated: expected at least 8 bytes (the header length), found {len(raw)}")
    n = struct.unpack("<Q", raw[:8])[0]
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length: expected at most {len(raw) - 8} bytes (the rest of the file), "
                         f"found {n} (truncated, or not a safetensors file)")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header: expected a JSON object (not a safetensors file)")
    metadata = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n:]
    tensors = {}
    for name, t in header.items():
        if t.get("dtype") not in DTYPES:
            raise ValueError(f"{path}: tensor '{name}': dtype: expected one of {', '.join(DTYPES)}, "
                             f"found {t.get('dtype')!r}")
        begin, end = t["data_offsets"]
        dtype = np.dtype(DTYPES[t["dtype"]])
        if end > len(data):
            raise ValueError(f"{path}: tensor '{name}': data_offsets: expected an end within the {len(data)} bytes "
                             f"of data, found {end} (truncated file?)")
        if math.prod(t["shape"]) * dtype.itemsize != end - begin:
            raise ValueError(f"{path}: tensor '{name}': expected {math.prod(t['shape']) * dtype.itemsize} bytes "
                             f"for shape {t['shape']}, found {end - begin}")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(t["shape"])
    return tensors, metadata


def config_pairs(text):
    """{key: value text} of `key = value` lines (# starts a comment)"""
    pairs = {}
    for line in text.splitlines():
        key, eq, value = line.partition("#")[0].partition("=")
        if eq:
            pairs[key.strip()] = value.strip()
    return pairs


@dataclass
class Config:
    """The model keys of a run's config (docs/TRAINING.md, "Config")."""
    vocab_size: int
    seq_len: int
    d_model: int
    n_layer: int
    n_head: int
    n_kv_head: int
    head_dim: int
    rope_theta: float
    qk_norm: int
    attn_window: int
    attn_sink_logit: int
    attn_gate: int
    n_expert: int
    top_k: int
    d_ff: int
    norm_topk: int
    aux_loss_coef: float
    z_loss_coef: float
    tie_embeddings: int
    rms_eps: float
    learned_pos: int = 0
    norm: str = "rms"     # rms | layer (LayerNorm with a bias)
    mlp: str = "swiglu"   # swiglu | relu

    @classmethod
    def from_text(cls, text):
        """from `key = value` lines (a config.txt, or the export's `config` metadata)"""
        pairs = config_pairs(text)
        # a key with a default may be absent (a config written before the key existed)
        config = cls(**{f.name: f.type(pairs[f.name]) for f in fields(cls) if f.name in pairs or f.default is MISSING})
        config.head_dim = config.head_dim or config.d_model // config.n_head
        return config


class Export:
    """What a bin/export file holds besides the weights: the run's step, its tokenizer, its probe set and
    its probes.jsonl lines at this step (train/export.h)."""

    def __init__(self, path, tensors, metadata):
        self.path, self.tensors, self.metadata = path, tensors, metadata
        self.step = int(metadata["step"])
        self.tokens = int(metadata["tokens"])
        self.val_loss = float(metadata["val_loss"])
        self.variants = metadata["probe_variants"].split(",")

    def probe_tokens(self, variant="natural"):
        """the probe set's windows [n][T] of one variant (natural, bos, random, shuffled, ...)"""
        return torch.from_numpy(self.tensors["probe.tokens"][self.variants.index(variant)].astype(np.int64))

    def probe_targets(self):
        """the next token of every natural window position [n][T] (also the bos variant's targets)"""
        return torch.from_numpy(self.tensors["probe.targets"].astype(np.int64))

    def probe_line(self, variant="natural"):
        """the run's own probes.jsonl line of this step and variant (a dict), or None"""
        lines = [json.loads(s) for s in self.metadata["probes_jsonl"].splitlines()]
        return next((line for line in lines if line["variant"] == variant), None)

    def decode(self, ids):
        """the bytes of a sequence of token ids"""
        offsets, table = self.tensors["tokenizer.offsets"], self.tensors["tokenizer.bytes"]
        return b"".join(table[offsets[i]:offsets[i + 1]].tobytes() for i in ids)


def load(path, dtype=torch.float32):
    """(model, export) from a bin/export file; the model in eval mode, in dtype"""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != "sinktrace":
        raise ValueError(f"{path}: metadata 'format': expected 'sinktrace', found {metadata.get('format')!r} "
                         f"(not a bin/export file)")
    model = SinkTrace(Config.from_text(metadata["config"])).to(dtype)
    state = {}
    for name, p in model.state_dict().items():
        if name not in tensors or tuple(tensors[name].shape) != tuple(p.shape):
            found = tuple(tensors[name].shape) if name in tensors else "nothing"
            raise ValueError(f"{path}: tensor '{name}': expected shape {tuple(p.shape)}, found {found}")
        state[name] = torch.from_numpy(tensors[name].copy())
    model.load_state_dict(state)
    return model.eval(), Export(path, tensors, metadata)


# ---- the model ------------------------------------------------------------------------------------

def rmsnorm(x, gain, eps):
    """y = x / sqrt(mean x^2 + eps) * g over the last dimension"""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain


def norm(x, gain, bias, eps):
    """the model's block and final norm: RMSNorm, or LayerNorm (norm = layer) when it has a bias"""
    return rmsnorm(x, gain, eps) if bias is None else F.layer_norm(x, x.shape[-1:], gain, bias, eps)


def rope_angles(T, D, theta):
    """cos and sin [T][D/2] of the angle pos * theta^(-2i/D), in float64"""
    i = torch.arange(D // 2, dtype=torch.float64)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2 * i / D)
    return angle.cos(), angle.sin()


def rope(x, cos, sin):
    """rotates the channel pair (i, i + D/2) of every head of x [B][T][heads][D] by its position's angle
    (position 0: angle 0, left unrotated)"""
    a, b = x.chunk(2, dim=-1)
    cos, sin = cos[:, None, :].to(x.dtype), sin[:, None, :].to(x.dtype)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def kv_for_heads(kv, n_head):
    """keys or values [B][T][KV][D] for each of the n_head query heads: query heads come in KV groups of
    n_head / KV consecutive heads, and group g reads key/value head g (query head h reads h // (H / KV))"""
    return kv.repeat_interleave(n_head // kv.shape[2], dim=2)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, KV, D, C = c.n_head, c.n_kv_head, c.head_dim, c.d_model
        self.c = c
        self.wq = nn.Parameter(torch.empty(H * D, C))
        self.wk = nn.Parameter(torch.empty(KV * D, C))
        self.wv = nn.Parameter(torch.empty(KV * D, C))
        if c.qk_norm:
            self.q_norm = nn.Parameter(torch.ones(D))
            self.k_norm = nn.Parameter(torch.ones(D))
        if c.attn_sink_logit:
            self.sink = nn.Parameter(torch.zeros(H))
        if c.attn_gate:
            self.w_gate = nn.Parameter(torch.empty(H * D, C))
        self.wo = nn.Parameter(torch.empty(C, H * D))

    def forward(self, x, cos, sin):
        """(the output [B][T][C], the attention probabilities [B][H][T][T]) of the normalised block input x"""
        c = self.c
        B, T, _ = x.shape
        H, KV, D = c.n_head, c.n_kv_head, c.head_dim
        q = F.linear(x, self.wq).view(B, T, H, D)
        k = F.linear(x, self.wk).view(B, T, KV, D)
        v = F.linear(x, self.wv).view(B, T, KV, D)
        if c.qk_norm:
            q, k = rmsnorm(q, self.q_norm, c.rms_eps), rmsnorm(k, self.k_norm, c.rms_eps)
        if not c.learned_pos:
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        k, v = kv_for_heads(k, H), kv_for_heads(v, H)
        scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(D)
        # query i sees keys j <= i (and with a window only i - j < window)
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        visible = (j <= i) & ((i - j < c.attn_window) if c.attn_window else True)
        scores = scores.masked_fill(~visible, float("-inf"))
        if c.attn_sink_logit:
            # one more key per head with logit `sink` and value zero: it takes attention and adds nothing
            sink = self.sink.view(1, H, 1, 1).expand(B, H, T, 1)
            probs = torch.cat([scores, sink], dim=-1).softmax(-1)[..., :T]
        else:
            probs = scores.softmax(-1)
        y = torch.einsum("bhij,bjhd->bihd", probs, v).reshape(B, T, H * D)
        if c.attn_gate:
            y = y * torch.sigmoid(F.linear(x, self.w_gate))
        return F.linear(y, self.wo), probs


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        E, Fh, C = c.n_expert, c.d_ff, c.d_model
        self.c = c
        if E > 1:
            self.router = nn.Parameter(torch.empty(E, C))
        if c.mlp == "swiglu":
            self.w_gate = nn.Parameter(torch.empty(E, Fh, C))
        self.w_up = nn.Parameter(torch.empty(E, Fh, C))
        self.w_down = nn.Parameter(torch.empty(E, C, Fh))

    def expert(self, e, x):
        """expert e: w_down (silu(w_gate x) * w_up x) (SwiGLU), or w_down relu(w_up x)"""
        up = F.linear(x, self.w_up[e])
        hidden = F.silu(F.linear(x, self.w_gate[e])) * up if self.c.mlp == "swiglu" else F.relu(up)
        return F.linear(hidden, self.w_down[e])

    def forward(self, x):
        """(the output [N][C], aux loss, z loss) of the normalised rows x [N][C]"""
        c = self.c
        E, k = c.n_expert, c.top_k
        if E == 1:
            return self.expert(0, x), x.new_zeros(()), x.new_zeros(())
        logits = F.linear(x, self.router)
        probs = logits.softmax(-1)
        # top-k, ties to the lower expert index (a stable sort)
        choice = probs.sort(dim=-1, descending=True, stable=True).indices[:, :k]
        weight = probs.gather(1, choice)
        if c.norm_topk:
            weight = weight / weight.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in range(E):
            rows, slot = (choice == e).nonzero(as_tuple=True)
            out = out.index_add(0, rows, weight[rows, slot, None] * self.expert(e, x[rows]))
        share = torch.bincount(choice.flatten(), minlength=E).to(x.dtype) / choice.numel()  # f_i, no gradient
        aux = E * (share * probs.mean(0)).sum()
        z = torch.logsumexp(logits, -1).pow(2).mean()
        return out, aux, z


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        layer = c.norm == "layer"
        self.attn_norm = nn.Parameter(torch.ones(c.d_model))
        self.attn_norm_bias = nn.Parameter(torch.zeros(c.d_model)) if layer else None
        self.attn = Attention(c)
        self.moe_norm = nn.Parameter(torch.ones(c.d_model))
        self.moe_norm_bias = nn.Parameter(torch.zeros(c.d_model)) if layer else None
        self.moe = MoE(c)


@dataclass
class Output:
    logits: torch.Tensor           # [B][T][V]
    loss: torch.Tensor = None      # ce + aux_loss_coef * aux + z_loss_coef * z (with targets)
    ce: torch.Tensor = None        # mean cross-entropy over targets != -1
    aux: torch.Tensor = None       # load-balancing loss, mean over blocks (0 when dense)
    z: torch.Tensor = None         # router z-loss, mean over blocks (0 when dense)
    attn: torch.Tensor = None      # [L][B][H][T][T] attention probabilities (capture)
    resid: torch.Tensor = None     # [2L+1][B][T][C] residual stream: 0 embeddings, 2l+1 after block l's
                                   # attention residual, 2l+2 after block l (capture)


class SinkTrace(nn.Module):
    """embedding -> L x [norm -> attention -> residual -> norm -> MoE -> residual] -> norm -> LM head (the norm:
    RMSNorm, or LayerNorm with norm = layer)"""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Parameter(torch.empty(c.vocab_size, c.d_model))
        if c.learned_pos:
            self.wpe = nn.Parameter(torch.empty(c.seq_len, c.d_model))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.final_norm = nn.Parameter(torch.ones(c.d_model))
        self.final_norm_bias = nn.Parameter(torch.zeros(c.d_model)) if c.norm == "layer" else None
        if not c.tie_embeddings:
            self.lm_head = nn.Parameter(torch.empty(c.vocab_size, c.d_model))

    def forward(self, tokens, targets=None, capture=False):
        """tokens [B][T] (and targets [B][T], -1 = ignored) -> Output; capture keeps attention and residuals"""
        c = self.c
        B, T = tokens.shape
        cos, sin = rope_angles(T, c.head_dim, c.rope_theta)
        x = self.wte[tokens] + (self.wpe[:T] if c.learned_pos else 0)
        resid, attn, aux, z = [x], [], 0, 0
        for block in self.blocks:
            a, probs = block.attn(norm(x, block.attn_norm, block.attn_norm_bias, c.rms_eps), cos, sin)
            x = x + a
            resid.append(x)
            m, aux_l, z_l = block.moe(norm(x, block.moe_norm, block.moe_norm_bias, c.rms_eps).view(B * T, -1))
            x = x + m.view(B, T, -1)
            resid.append(x)
            attn.append(probs)
            aux, z = aux + aux_l / c.n_layer, z + z_l / c.n_layer
        head = self.wte if c.tie_embeddings else self.lm_head
        out = Output(logits=F.linear(norm(x, self.final_norm, self.final_norm_bias, c.rms_eps), head))
        if targets is not None:
            out.ce = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
            out.aux, out.z = aux, z
            out.loss = out.ce + c.aux_loss_coef * aux + c.z_loss_coef * z
        if capture:
            out.attn, out.resid = torch.stack(attn), torch.stack(resid)
        return out


# ---- the headline probe metrics (probes/metrics.h, SCIENCE.md "Definitions") -------------------------

def chance(T):
    """(H_T - 1) / (T - 1): uniform causal attention's mean weight on key 0 over queries i >= 1"""
    return (sum(1.0 / t for t in range(1, T + 1)) - 1) / (T - 1)


def a_p0(attn):
    """attention on key 0 per layer and head [L][H] (probes.jsonl a_p0): the mean over sequences and
    queries i >= 1 of attn [L][B][H][T][T]"""
    return attn[..., 1:, 0].double().mean(dim=(1, 3))


def rho(resid):
    """P0's norm over the median norm of positions i >= 1, per residual point [2L+1] (probes.jsonl rho):
    the ratio per sequence, then the mean over sequences, of resid [2L+1][B][T][C]. The median of an
    even count is the mean of the middle two."""
    norms = resid.double().norm(dim=-1)
    return (norms[..., 0] / norms[..., 1:].quantile(0.5, dim=-1)).mean(-1)
