#!/usr/bin/python3
"""One PromptKD training step in PyTorch, the same work as promptkd's distill_step (method
promptkd, DESIGN.md section 3), for tests/bench/promptkd_step.sh to compare with
build/bench/bench_promptkd.

  torch_promptkd.py --vocab V --positions N --t-layers L --t-embd C --t-heads H
                    --s-layers L --s-embd C --s-heads H --batch B --prompt-tokens T0
                    --new-tokens K --prompt-len P [--steps S] [--warmup W] [--threads N] [--eos ID]

The step, as promptkd does it:
 1. the student samples K tokens per row with a KV cache (no grad; temperature 1, no top-k/top-p);
    the prefill computes the LM head at the last prompt slot only, and the last sampled token is
    not fed back (K - 1 cached steps);
 2. T (teacher, no prompt) logits and S logits (with grad, kept for step 3) on prompt + response;
    T' = the frozen teacher (requires_grad False) with the soft prompt [P, C] (requires_grad)
    prepended; L_prompt = (1 - t/N) * KL(T' || T) + KL(T' || S), full vocabulary, mean over the
    B * K response positions; backward into the prompt only; clip 1.0; AdamW (decay 0.01);
 3. T' again (no grad) with the updated prompt; L_student = KL(S || T'); backward through the
    student; global-norm clip 1.0; AdamW (decay on matrices, not on biases / LayerNorm).
Full-vocabulary logits are computed at every slot of a scoring forward, as promptkd does.

Fixed response length: as in bench_promptkd.c the student's EOS logit is pinned near -50
(ln_f channel 0 = constant 1, wte[eos] = -50 on channel 0), so no row stops early; every step
asserts that no EOS was sampled. Models are random (seeded) with the given shapes.

Prints one JSON line: median ms per step after the warm-up, median CPU ms per step (all threads),
and the median of each phase."""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt2 import GPT2, paced_turn  # noqa: E402  (the plain HF-layout GPT-2 of `make bench`)


def hidden(model, x, caches=None, t0=0):
    """Blocks + ln_f over input embeddings x [B, T, C] at positions t0.. (the soft prompt enters here)."""
    x = x + model.wpe[t0:t0 + x.shape[1]]
    for i, blk in enumerate(model.h):
        x = blk(x, caches[i] if caches is not None else None)
    return model.ln_f(x)


def logits_of(model, x):
    return hidden(model, x) @ model.wte.t()  # [B, T, V] at every slot


@torch.no_grad()
def sample(student, prompts, K, eos, gen):
    """K tokens per row, temperature 1, full vocabulary, KV cache."""
    B, T0 = prompts.shape
    caches = [[None, None] for _ in student.h]
    h = hidden(student, student.wte[prompts], caches, 0)
    logits = h[:, -1] @ student.wte.t()  # [B, V]: only the last prompt slot predicts
    out = []
    for i in range(K):
        nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=gen)  # [B, 1]
        out.append(nxt)
        if i + 1 < K:
            logits = hidden(student, student.wte[nxt], caches, T0 + i)[:, -1] @ student.wte.t()
    resp = torch.cat(out, dim=1)
    assert not bool((resp == eos).any()), "an EOS was sampled: responses would not be fixed-length"
    return resp


def kl_rows(logp, logq):
    """sum_v p (log p - log q) per row, mean over rows (the masked response positions)."""
    return (logp.exp() * (logp - logq)).sum(-1).mean()


def adamw_groups(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser()
    for name, default in (("vocab", 2048), ("positions", 256), ("t-layers", 4), ("t-embd", 192), ("t-heads", 6),
                          ("s-layers", 2), ("s-embd", 64), ("s-heads", 2), ("batch", 8), ("prompt-tokens", 42),
                          ("new-tokens", 48), ("prompt-len", 7), ("steps", 3), ("warmup", 1), ("threads", 2),
                          ("eos", -1), ("total-steps", 1000), ("warmup-steps", 100)):
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--paced", action="store_true", help="take turns with tests/bench/paired.py")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    V, B, T0, K, P = a.vocab, a.batch, a.prompt_tokens, a.new_tokens, a.prompt_len
    eos = a.eos if a.eos >= 0 else V - 1

    teacher = GPT2(a.t_layers, a.t_embd, a.t_heads, V, a.positions)
    student = GPT2(a.s_layers, a.s_embd, a.s_heads, V, a.positions)
    for p in teacher.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # pin the student's EOS logit near -50 (see the docstring)
        student.ln_f.weight[0] = 0.0
        student.ln_f.bias[0] = 1.0
        student.wte[eos].zero_()
        student.wte[eos, 0] = -50.0
    gen = torch.Generator().manual_seed(1234)
    prompt_ids = torch.randint(0, V - 1, (B, T0), generator=gen)
    prompt_ids[prompt_ids == eos] = 0
    init_ids = torch.randint(0, V - 1, (P,), generator=gen)
    soft = teacher.wte[init_ids].clone().requires_grad_(True)  # [P, C], from teacher embedding rows
    opt_p = torch.optim.AdamW([soft], lr=a.lr, weight_decay=0.01)
    opt_s = torch.optim.AdamW(adamw_groups(student), lr=a.lr)
    pos = slice(T0 - 1, T0 + K - 1)        # S/T slots predicting response tokens (EOS slot included)
    pos_p = slice(P + T0 - 1, P + T0 + K - 1)  # the same slots in T'

    times = {"step": [], "cpu": [], "sampling": [], "prompt_update": [], "student_update": []}
    for step in range(a.warmup + a.steps):
        paced_turn(a, "step %d" % (step + 1))
        scale = min(1.0, (step + 1) / a.warmup_steps)
        for o in (opt_p, opt_s):
            for g in o.param_groups:
                g["lr"] = a.lr * scale
        t0, c0 = time.perf_counter(), time.process_time()
        # (1) on-policy student samples
        resp = sample(student, prompt_ids, K, eos, gen)
        tokens = torch.cat([prompt_ids, resp], dim=1)[:, :-1]  # [B, T0 + K - 1]
        t1 = time.perf_counter()
        # (2) prompt update
        emb = teacher.wte[tokens]  # frozen: no grad
        with torch.no_grad():
            logq_t = F.log_softmax(logits_of(teacher, emb)[:, pos], dim=-1)
        s_logits = logits_of(student, student.wte[tokens])[:, pos]  # graph kept for (3)
        logq_s = F.log_softmax(s_logits.detach(), dim=-1)
        x_p = torch.cat([soft.unsqueeze(0).expand(B, P, soft.shape[1]), emb], dim=1)
        logp_tp = F.log_softmax(logits_of(teacher, x_p)[:, pos_p], dim=-1)
        coef = max(0.0, 1.0 - step / a.total_steps) * 1.0
        loss_prompt = coef * kl_rows(logp_tp, logq_t) + kl_rows(logp_tp, logq_s)
        opt_p.zero_grad(set_to_none=False)
        loss_prompt.backward()
        torch.nn.utils.clip_grad_norm_([soft], 1.0)
        opt_p.step()
        t2 = time.perf_counter()
        # (3) student update against T' with the updated prompt
        with torch.no_grad():
            x_p = torch.cat([soft.unsqueeze(0).expand(B, P, soft.shape[1]), emb], dim=1)
            logq_tp = F.log_softmax(logits_of(teacher, x_p)[:, pos_p], dim=-1)
        loss_student = kl_rows(F.log_softmax(s_logits, dim=-1), logq_tp)
        opt_s.zero_grad(set_to_none=False)
        loss_student.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt_s.step()
        t3, c3 = time.perf_counter(), time.process_time()
        if not (torch.isfinite(loss_prompt) and torch.isfinite(loss_student)):
            raise SystemExit("torch_promptkd: non-finite loss at step %d" % (step + 1))
        if a.paced:
            print(json.dumps({"step": step + 1, "ms": (t3 - t0) * 1e3, "cpu_ms": (c3 - c0) * 1e3}), flush=True)
        if step >= a.warmup:
            times["step"].append(t3 - t0)
            times["cpu"].append(c3 - c0)
            times["sampling"].append(t1 - t0)
            times["prompt_update"].append(t2 - t1)
            times["student_update"].append(t3 - t2)
    paced_turn(a, "the final turn")
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(json.dumps({"impl": "pytorch", "ms_per_step": med["step"], "cpu_ms_per_step": med["cpu"],
                      "ms_sampling": med["sampling"],
                      "ms_prompt_update": med["prompt_update"], "ms_student_update": med["student_update"],
                      "steps_ms": [round(t * 1e3, 1) for t in times["step"]], "threads": torch.get_num_threads(),
                      "response_tokens": B * K, "loss_student": float(loss_student),
                      "loss_prompt": float(loss_prompt)}))


if __name__ == "__main__":
    sys.exit(main())
