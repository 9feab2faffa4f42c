#!/usr/bin/python3
"""A plain PyTorch GPT-2 (Hugging Face layout: Conv1D weights [in, out], tied head)
doing the same work as `promptkd bench`, for the comparison `make bench` prints.

  torch_gpt2.py train  --layers L --embd C --heads H --vocab V --batch B --seq T --steps N --threads K
  torch_gpt2.py decode --layers L --embd C --heads H --vocab V --batch B --prompt-len T0 --new-tokens N --threads K
  torch_gpt2.py check  --model DIR [--double]   (loss and wte grad norm of the HF fixture, for cross-checks)

Each prints one JSON line."""
import argparse
import json
import math
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, C, H, Fi):
        super().__init__()
        self.H = H
        self.ln_1 = torch.nn.LayerNorm(C, eps=1e-5)
        self.c_attn_w = torch.nn.Parameter(torch.randn(C, 3 * C) * 0.02)
        self.c_attn_b = torch.nn.Parameter(torch.zeros(3 * C))
        self.c_proj_w = torch.nn.Parameter(torch.randn(C, C) * 0.02)
        self.c_proj_b = torch.nn.Parameter(torch.zeros(C))
        self.ln_2 = torch.nn.LayerNorm(C, eps=1e-5)
        self.fc_w = torch.nn.Parameter(torch.randn(C, Fi) * 0.02)
        self.fc_b = torch.nn.Parameter(torch.zeros(Fi))
        self.fcp_w = torch.nn.Parameter(torch.randn(Fi, C) * 0.02)
        self.fcp_b = torch.nn.Parameter(torch.zeros(C))

    def forward(self, x, cache=None):
        B, T, C = x.shape
        H, hs = self.H, C // self.H
        qkv = torch.addmm(self.c_attn_b, self.ln_1(x).view(-1, C), self.c_attn_w).view(B, T, 3, H, hs)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # [B, H, T, hs] each
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        Tk = k.shape[2]
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hs))
        if T > 1:
            mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=Tk - T)
            att = att.masked_fill(~mask, float("-inf"))
        y = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B * T, C)
        x = x + torch.addmm(self.c_proj_b, y, self.c_proj_w).view(B, T, C)
        h = F.gelu(torch.addmm(self.fc_b, self.ln_2(x).view(-1, C), self.fc_w), approximate="tanh")
        return x + torch.addmm(self.fcp_b, h, self.fcp_w).view(B, T, C)


class GPT2(torch.nn.Module):
    def __init__(self, L, C, H, V, maxT, Fi=None):
        super().__init__()
        self.wte = torch.nn.Parameter(torch.randn(V, C) * 0.02)
        self.wpe = torch.nn.Parameter(torch.randn(maxT, C) * 0.02)
        self.h = torch.nn.ModuleList([Block(C, H, Fi or 4 * C) for _ in range(L)])
        self.ln_f = torch.nn.LayerNorm(C, eps=1e-5)

    def forward(self, idx, caches=None, t0=0):
        B, T = idx.shape
        x = self.wte[idx] + self.wpe[t0:t0 + T]
        for i, blk in enumerate(self.h):
            x = blk(x, caches[i] if caches is not None else None)
        return self.ln_f(x) @ self.wte.t()


def load_hf(model, path):
    """Reads an F32 model.safetensors into the module (names with or without 'transformer.')."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    def get(name):
        for key in (name, "transformer." + name):
            if key in header:
                e = header[key]
                a, b = e["data_offsets"]
                return torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(e["shape"]).copy())
        raise KeyError(name)
    with torch.no_grad():
        model.wte.copy_(get("wte.weight"))
        model.wpe.copy_(get("wpe.weight"))
        model.ln_f.weight.copy_(get("ln_f.weight"))
        model.ln_f.bias.copy_(get("ln_f.bias"))
        for i, blk in enumerate(model.h):
            p = "h.%d." % i
            for mod, name in ((blk.ln_1, "ln_1"), (blk.ln_2, "ln_2")):
                mod.weight.copy_(get(p + name + ".weight"))
                mod.bias.copy_(get(p + name + ".bias"))
            for attr, name in (("c_attn", "attn.c_attn"), ("c_proj", "attn.c_proj"), ("fc", "mlp.c_fc"),
                               ("fcp", "mlp.c_proj")):
                getattr(blk, attr + "_w").copy_(get(p + name + ".weight"))
                getattr(blk, attr + "_b").copy_(get(p + name + ".bias"))


def paced_turn(a, what):
    """--paced: wait for tests/bench/paired.py to hand this program its turn (a line on stdin)."""
    if a.paced and not sys.stdin.readline():
        sys.exit("torch_gpt2.py --paced: standard input ended before %s" % what)


def bench_train(a):
    model = GPT2(a.layers, a.embd, a.heads, a.vocab, max(1024, a.seq))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
    x, y = idx[:, :-1], idx[:, 1:]
    steps, fwd, bwd, cpu = [], [], [], []
    for i in range(a.steps):
        paced_turn(a, "step %d" % (i + 1))
        t0, c0 = time.perf_counter(), time.process_time()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, a.vocab), y.reshape(-1))
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3, c3 = time.perf_counter(), time.process_time()
        steps.append(t3 - t0)
        cpu.append(c3 - c0)
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        if a.paced:
            print(json.dumps({"step": i + 1, "ms": (t3 - t0) * 1e3, "cpu_ms": (c3 - c0) * 1e3}), flush=True)
    paced_turn(a, "the final turn")
    # input-only backward: a frozen model, gradient only for the input embeddings
    for p in model.parameters():
        p.requires_grad_(False)
    emb_times = []
    for _ in range(max(2, a.steps // 2)):
        emb = (model.wte[x] + model.wpe[: a.seq]).detach().requires_grad_(True)
        h = emb
        for blk in model.h:
            h = blk(h)
        loss = F.cross_entropy((model.ln_f(h) @ model.wte.t()).view(-1, a.vocab), y.reshape(-1))
        t0 = time.perf_counter()
        loss.backward()
        emb_times.append(time.perf_counter() - t0)
    warm = lambda v: v[1:] if len(v) > 2 else v  # the first step pays for allocation
    ms = statistics.median(warm(steps)) * 1e3
    print(json.dumps({"impl": "pytorch", "ms_per_step": ms, "tokens_per_s": a.batch * a.seq / ms * 1e3,
                      "ms_forward": statistics.median(warm(fwd)) * 1e3,
                      "ms_backward": statistics.median(warm(bwd)) * 1e3,
                      "ms_backward_inputs_only": statistics.median(warm(emb_times)) * 1e3,
                      "cpu_ms_per_step": statistics.median(warm(cpu)) * 1e3,
                      "loss": float(loss)}))


@torch.no_grad()
def bench_decode(a):
    model = GPT2(a.layers, a.embd, a.heads, a.vocab, max(1024, a.prompt_len + a.new_tokens))
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, a.vocab, (a.batch, a.prompt_len), generator=gen)
    best = None
    for _ in range(2):
        caches = [[None, None] for _ in model.h]
        t0 = time.perf_counter()
        logits = model(idx, caches, 0)
        t1 = time.perf_counter()
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        for i in range(a.new_tokens - 1):
            logits = model(nxt, caches, a.prompt_len + i)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
        t2 = time.perf_counter()
        r = {"impl": "pytorch", "ms_prefill": (t1 - t0) * 1e3,
             "tokens_per_s": a.batch * (a.new_tokens - 1) / (t2 - t1)}
        if best is None or r["tokens_per_s"] > best["tokens_per_s"]:
            best = r
    print(json.dumps(best))


def check(a):
    import os
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    model = GPT2(cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["vocab_size"], cfg["n_positions"], cfg.get("n_inner"))
    load_hf(model, os.path.join(a.model, "model.safetensors"))
    if a.double:
        model = model.double()
    ref_path = os.path.join(a.model, "reference.safetensors")
    with open(ref_path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    e = header["input_ids"]
    ids = torch.from_numpy(np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], dtype=np.int64)
                           .reshape(e["shape"]).copy())
    logits = model(ids)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    print(json.dumps({"loss": float(loss), "wte_grad_norm": float(model.wte.grad.double().norm())}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "decode", "check"])
    for name, default in (("layers", 12), ("embd", 768), ("heads", 12), ("vocab", 50257), ("batch", 4), ("seq", 64),
                          ("steps", 5), ("prompt-len", 64), ("new-tokens", 64), ("threads", 2)):
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--model")
    ap.add_argument("--double", action="store_true")
    ap.add_argument("--paced", action="store_true", help="train: take turns with tests/bench/paired.py")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    {"train": bench_train, "decode": bench_decode, "check": check}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
