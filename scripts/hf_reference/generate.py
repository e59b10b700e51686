"""Greedy and beam search with HF's semantics (transformers >= 4.50 vectorised beam search;
see docs/hf-reference.md for every choice), over a model from models.py."""

import math

import torch

from .checkpoint import CheckpointError

NEG = -1.0e9  # HF's "not a candidate" offset in beam search


class GenConfig:
    """Generation settings resolved as: generation_config.json key, else config.json key,
    else GenerationConfig's default."""

    KEYS = dict(decoder_start_token_id=None, bos_token_id=None, eos_token_id=None, pad_token_id=None,
                forced_bos_token_id=None, forced_eos_token_id=None, bad_words_ids=None,
                max_length=20, max_new_tokens=None, min_length=0, no_repeat_ngram_size=0,
                num_beams=1, length_penalty=1.0, early_stopping=False,
                # the generation controls (docs/hf-reference.md "Generation controls")
                do_sample=False, temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0,
                min_new_tokens=None, suppress_tokens=None, num_return_sequences=1)
    # Settings that change the output but are not implemented: refused unless neutral, so a
    # checkpoint relying on one fails loudly instead of decoding differently from HF.
    NEUTRAL = dict(encoder_repetition_penalty=1.0, encoder_no_repeat_ngram_size=0, num_beam_groups=1,
                   diversity_penalty=0.0, sequence_bias=None,
                   begin_suppress_tokens=None, forced_decoder_ids=None, force_words_ids=None,
                   constraints=None, renormalize_logits=False, exponential_decay_length_penalty=None,
                   max_time=None, stop_strings=None, guidance_scale=None, typical_p=1.0,
                   epsilon_cutoff=0.0, eta_cutoff=0.0, min_p=None, penalty_alpha=None)

    def __init__(self, cfg, gen, model_defaults=None, **override):
        src = {}
        for k, d in self.KEYS.items():
            v = d
            if model_defaults and model_defaults.get(k) is not None:
                v = model_defaults[k]
            if cfg.get(k) is not None:
                v = cfg[k]
            if gen.get(k) is not None:
                v = gen[k]
            if k in override:
                v = override[k]
            src[k] = v
        for k, neutral in self.NEUTRAL.items():
            v = override.get(k, gen.get(k, cfg.get(k)))
            if v is not None and v != neutral and not (neutral is None and v in ([], {})):
                raise CheckpointError(f"generation setting {k}={v!r} is not supported by the reference")
        eos = src["eos_token_id"]
        self.eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
        if not self.eos or not all(isinstance(e, int) and e >= 0 for e in self.eos):
            raise CheckpointError(f"eos_token_id must be an int or a non-empty list of ints, got {eos!r}")
        self.start = src["decoder_start_token_id"]
        if self.start is None:
            self.start = src["bos_token_id"]
        if not isinstance(self.start, int):
            raise CheckpointError("no decoder_start_token_id (nor bos_token_id) in the configs")
        self.pad = src["pad_token_id"] if src["pad_token_id"] is not None else self.eos[0]
        self.forced_bos = src["forced_bos_token_id"]
        self.forced_eos = src["forced_eos_token_id"]
        if isinstance(self.forced_eos, int):
            self.forced_eos = [self.forced_eos]
        self.max_length = int(src["max_length"])
        if self.max_length < 2:
            raise CheckpointError(f"max_length {self.max_length} leaves no room to generate")
        if src["max_new_tokens"] is not None:  # HF: the decoder prompt (start token) + new tokens
            self.max_length = 1 + int(src["max_new_tokens"])
            if self.max_length < 2:
                raise CheckpointError("max_new_tokens must be >= 1")
        self.min_length = int(src["min_length"] or 0)
        self.no_repeat_ngram = int(src["no_repeat_ngram_size"] or 0)
        self.num_beams = int(src["num_beams"])
        self.length_penalty = float(src["length_penalty"])
        es = src["early_stopping"]
        if es not in (True, False, "never"):
            raise CheckpointError(f"early_stopping must be true, false or \"never\", got {es!r}")
        self.early_stopping = es
        bw = src["bad_words_ids"]
        if bw is not None:
            if (not isinstance(bw, list) or not bw or
                    not all(isinstance(w, list) and w and all(isinstance(t, int) and t >= 0 for t in w) for w in bw)):
                raise CheckpointError(f"bad_words_ids must be a non-empty list of non-empty lists of ids: {bw!r}")
            bw = [w for w in bw if not any(w == [e] for e in self.eos)]  # HF never bans [eos]
        self.bad_words = bw or []
        self.do_sample = bool(src["do_sample"])
        self.temperature = float(src["temperature"])
        self.top_k = int(src["top_k"] or 0)
        self.top_p = float(src["top_p"])
        self.repetition_penalty = float(src["repetition_penalty"])
        self.min_new_tokens = int(src["min_new_tokens"] or 0)
        if self.min_new_tokens > 0:  # HF's _prepare_generated_length: it takes precedence
            self.min_length = 1 + self.min_new_tokens
        self.suppress = list(src["suppress_tokens"] or [])
        self.num_return_sequences = int(src["num_return_sequences"])
        if not (self.temperature > 0 and 0 < self.top_p <= 1 and self.top_k >= 0 and
                self.repetition_penalty > 0 and self.num_return_sequences >= 1):
            raise CheckpointError("a generation control is out of range")
        if self.do_sample and self.num_beams > 1:
            raise CheckpointError("beam sampling (do_sample with num_beams > 1) is not supported")

    def controls(self):
        """The generation controls, as golden files record them."""
        return dict(do_sample=self.do_sample, temperature=self.temperature, top_k=self.top_k,
                    top_p=self.top_p, repetition_penalty=self.repetition_penalty,
                    min_new_tokens=self.min_new_tokens, suppress_tokens=self.suppress,
                    num_return_sequences=self.num_return_sequences)

    def as_dict(self):
        return dict(decoder_start_token_id=self.start, eos_token_id=self.eos, pad_token_id=self.pad,
                    forced_bos_token_id=self.forced_bos, forced_eos_token_id=self.forced_eos,
                    bad_words_ids=self.bad_words, max_length=self.max_length, min_length=self.min_length,
                    no_repeat_ngram_size=self.no_repeat_ngram, num_beams=self.num_beams,
                    length_penalty=self.length_penalty, early_stopping=self.early_stopping)


def process(gc, seqs, scores):
    """HF's logits processors in HF's order (RepetitionPenalty, NoRepeatNGram, NoBadWords,
    MinLength with min_new_tokens folded in, ForcedBOS, ForcedEOS, SuppressTokens) on [R, V]
    scores for R running prefixes `seqs` (lists including the decoder start token)."""
    scores = scores.clone()
    V = scores.shape[1]
    cur_len = len(seqs[0])
    if gc.repetition_penalty != 1.0:  # RepetitionPenaltyLogitsProcessor: gather, rescale, scatter
        for r, s in enumerate(seqs):
            idx = torch.tensor(sorted(set(s)), dtype=torch.long)
            got = scores[r, idx]
            scores[r, idx] = torch.where(got < 0, got * gc.repetition_penalty, got / gc.repetition_penalty)
    n = gc.no_repeat_ngram
    if n > 0 and cur_len + 1 >= n:
        for r, s in enumerate(seqs):  # ban t when prefix[-(n-1):] + [t] already occurred
            tail = s[len(s) - (n - 1):] if n > 1 else []
            for i in range(len(s) - n + 1):
                if s[i:i + n - 1] == tail:
                    scores[r, s[i + n - 1]] = -math.inf
    for w in gc.bad_words:
        if len(w) == 1:
            if w[0] < V:
                scores[:, w[0]] = -math.inf
            continue
        if len(w) > cur_len:  # SequenceBias ignores a sequence longer than the context
            continue
        for r, s in enumerate(seqs):
            if s[len(s) - (len(w) - 1):] == w[:-1] and w[-1] < V:
                scores[r, w[-1]] = -math.inf
    if cur_len < gc.min_length:
        for e in gc.eos:
            scores[:, e] = -math.inf
    if gc.forced_bos is not None and cur_len == 1:
        scores[:, :] = -math.inf
        scores[:, gc.forced_bos] = 0
    if gc.forced_eos is not None and cur_len == gc.max_length - 1:
        scores[:, :] = -math.inf
        scores[:, gc.forced_eos] = 0
    for t in gc.suppress:  # SuppressTokensLogitsProcessor, after the forced tokens as in HF
        scores[:, t] = -math.inf
    return scores


def warp(gc, scores):
    """HF's warpers in HF's order (Temperature, TopK, TopP; min_tokens_to_keep 1) on [R, V]
    processed scores. Also returns the smallest gap at a warper's boundary (k-th vs (k+1)-th
    score; cumulative mass vs 1 - top_p), where rounding could change the kept set."""
    scores = scores.clone()
    gap = math.inf
    if gc.temperature != 1.0:
        scores = scores / gc.temperature
    if gc.top_k and gc.top_k < scores.shape[-1]:
        top = torch.topk(scores, gc.top_k + 1, dim=-1).values
        kth = top[..., gc.top_k - 1:gc.top_k]
        fin = torch.isfinite(top[..., -1])
        if bool(fin.any()):
            gap = min(gap, float((top[..., -2] - top[..., -1])[fin].min()))
        scores = scores.masked_fill(scores < kth, -math.inf)
    if gc.top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(scores, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - gc.top_p)
        remove[..., -1:] = False
        live = sorted_logits > -math.inf
        d = (cum - (1 - gc.top_p)).abs()[live]
        if d.numel():
            gap = min(gap, float(d.min()))
        scores = scores.masked_fill(remove.scatter(1, sorted_idx, remove), -math.inf)
    return scores, gap


def next_token_probs(model, gc, source, prefix):
    """The sampling distribution of the token after `prefix` (generated tokens, without the
    start token): softmax of the warped, processed logits; with the smallest boundary gap."""
    enc, mask = encode_batch(model, [source], gc.pad)
    seq = [gc.start] + list(prefix)
    logits = _step_logits(model, [seq], enc, mask).double()
    scores, gap = warp(gc, process(gc, [seq], logits))
    return torch.softmax(scores, -1)[0], gap, torch.softmax(logits, -1)[0]


def encode_batch(model, sources, pad):
    """Right-pads the sources (HF tokenizers pad on the right for these models)."""
    S = max(len(s) for s in sources)
    if min(len(s) for s in sources) == 0:
        raise ValueError("empty source")
    ids = torch.full((len(sources), S), pad, dtype=torch.long)
    mask = torch.zeros((len(sources), S), dtype=torch.long)
    for i, s in enumerate(sources):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    with torch.no_grad():
        return model.encode(ids, mask), mask


def _step_logits(model, seqs, enc, mask):
    with torch.no_grad():
        out = model.logits(torch.tensor(seqs, dtype=torch.long), enc, mask)
    return out[:, -1, :]


def greedy(model, gc, sources, top_n=0):
    """HF greedy: processors on raw logits, argmax; finished rows are fed pad tokens. Returns
    per source: sequence (with the start token), tokens (generated, EOS included when it
    stopped on one), logprobs (log_softmax of the unprocessed logits at each chosen token),
    finish_reason, margin (smallest top-1 minus top-2 gap of the processed logits over the
    steps not forced; inf if all were forced)."""
    enc, mask = encode_batch(model, sources, gc.pad)
    N = len(sources)
    seqs = [[gc.start] for _ in range(N)]
    done = [False] * N
    res = [dict(tokens=[], logprobs=[], top_logprobs=[], finish_reason="length", margin=math.inf)
           for _ in range(N)]
    while len(seqs[0]) < gc.max_length and not all(done):
        logits = _step_logits(model, seqs, enc, mask).double()
        raw_lp = torch.log_softmax(logits, -1)
        proc = process(gc, seqs, logits)
        top = torch.topk(proc, 2, dim=-1)
        for i in range(N):
            if done[i]:
                seqs[i].append(gc.pad)
                continue
            t = int(top.indices[i, 0])
            seqs[i].append(t)
            r = res[i]
            r["tokens"].append(t)
            r["logprobs"].append(float(raw_lp[i, t]))
            if top_n:  # the model's best (raw log-softmax), best first
                tv, ti = torch.topk(raw_lp[i], top_n + 1)
                r["top_logprobs"].append([[int(a), float(b)] for a, b in zip(ti[:top_n], tv[:top_n])])
                # adjacent ranks closer than this could swap under rounding
                r.setdefault("top_margin", math.inf)
                r["top_margin"] = min(r["top_margin"], float((tv[:-1] - tv[1:]).min()))
            if math.isfinite(float(top.values[i, 1])):
                r["margin"] = min(r["margin"], float(top.values[i, 0] - top.values[i, 1]))
            if t in gc.eos:
                done[i] = True
                r["finish_reason"] = "eos"
    for i in range(N):
        res[i]["sequence"] = [gc.start] + res[i]["tokens"]
    return res


def beam_search(model, gc, sources, num_beams=None, trace=None):
    """HF >= 4.50 beam search (generation/utils.py _beam_search), per source:
      - running beams start as [start] with scores [0, -1e9, ...];
      - each step: log_softmax of the logits, then the processors, plus the running score;
        take the top K = max(2, 1 + len(eos)) * B of the B*V candidates;
      - a candidate "hits" when its token is an EOS or its length reaches max_length; the
        next running beams are the top B candidates after a -1e9 penalty on hits;
      - a hit ranked < B (among the K) becomes a finished hypothesis with score
        sum_logprobs / generated_len ** length_penalty, generated_len counting the new token
        (EOS included) and not the start token; the B best finished are kept; none are added
        when early_stopping is True and B are already finished, or once the heuristic below
        said stop;
      - stop heuristic (sticky): all B finished and best_running / L ** length_penalty <=
        worst finished, L = generated length so far (or max_length - 1 when early_stopping
        is "never" and length_penalty > 0);
      - the loop ends when no source can improve, or (early_stopping True) all have B
        finished, or every candidate hit a stopping criterion (max_length).
    Returns per source: sequence, tokens, score (the best finished score), sum_logprobs,
    finish_reason, margin (smallest gap between adjacent ranked candidates among the top K+1
    at each step and between the two best finished scores; decisions within this gap could
    flip under rounding)."""
    B = num_beams or gc.num_beams
    if B < 2:
        raise ValueError("beam search needs num_beams >= 2")
    out = []
    enc_all, mask_all = encode_batch(model, sources, gc.pad)
    K = max(2, 1 + len(gc.eos)) * B
    N = len(sources)
    enc = enc_all.repeat_interleave(B, 0)
    mask = mask_all.repeat_interleave(B, 0)
    run = [[[gc.start] for _ in range(B)] for _ in range(N)]
    run_lp = [[[] for _ in range(B)] for _ in range(N)]  # per-token processed log-probs
    run_score = torch.full((N, B), NEG, dtype=torch.float64)
    run_score[:, 0] = 0
    fin = [[] for _ in range(N)]  # (score, seq, lps, reason) sorted best first, at most B
    unsat = [True] * N
    margins = [math.inf] * N
    cur_len = 1
    while True:
        flat = [s for beams in run for s in beams]
        logits = _step_logits(model, flat, enc, mask).double()
        V = logits.shape[1]
        lp = process(gc, flat, torch.log_softmax(logits, -1)).view(N, B, V)
        acc = (lp + run_score[:, :, None]).view(N, B * V)
        top = torch.topk(acc, K + 1, dim=-1)
        all_hit = True
        for i in range(N):
            vals = top.values[i].tolist()
            idx = top.indices[i].tolist()
            cands = []
            for rank in range(K):
                b, t = divmod(idx[rank], V)
                seq = run[i][b] + [t]
                hit = t in gc.eos or len(seq) >= gc.max_length
                cands.append((vals[rank], seq, run_lp[i][b] + [float(lp[i, b, t])], hit, rank,
                              "eos" if t in gc.eos else "length"))
            all_hit = all_hit and all(c[3] for c in cands)
            if unsat[i]:
                for a, b2 in zip(vals, vals[1:]):
                    if math.isfinite(a) and math.isfinite(b2) and a > NEG / 2 and b2 > NEG / 2:
                        margins[i] = min(margins[i], a - b2)
            # next running beams
            live = sorted(cands, key=lambda c: -(c[0] + (NEG if c[3] else 0.0)))[:B]
            run[i] = [c[1] for c in live]
            run_lp[i] = [c[2] for c in live]
            run_score[i] = torch.tensor([c[0] + (NEG if c[3] else 0.0) for c in live], dtype=torch.float64)
            # finished hypotheses
            full_and_true = len(fin[i]) == B and gc.early_stopping is True
            if unsat[i] and not full_and_true:
                glen = cur_len  # generated tokens incl. the new one: cur_len + 1 - prompt(1)
                for score, seq, lps, hit, rank, why in cands:
                    # -inf candidates (only possible beside a forced token) never finish: HF
                    # would take them in torch.topk's tie order, which no engine can match.
                    if hit and rank < B and math.isfinite(score):
                        fin[i].append((score / glen ** gc.length_penalty, seq, lps, why))
                fin[i].sort(key=lambda f: -f[0])
                fin[i] = fin[i][:B]
        cur_len += 1
        for i in range(N):
            if not unsat[i] or len(fin[i]) < B:
                continue
            if gc.early_stopping == "never" and gc.length_penalty > 0:
                L = gc.max_length - 1
            else:
                L = cur_len - 1
            best_possible = float(run_score[i, 0]) / L ** gc.length_penalty
            if not best_possible > fin[i][-1][0]:
                unsat[i] = False
        if trace is not None:
            trace.append([list(f[0] for f in fin[i]) for i in range(N)])
        if not any(unsat):
            break
        if gc.early_stopping is True and all(len(f) == B for f in fin):
            break
        if all_hit:
            break
    for i in range(N):
        if not fin[i]:
            raise RuntimeError("beam search finished no hypothesis")  # cannot happen at max_length
        if len(fin[i]) > 1:
            margins[i] = min(margins[i], fin[i][0][0] - fin[i][1][0])
        score, seq, lps, why = fin[i][0]
        # the n-best list is only as sure as the gaps between adjacent finished scores
        nbest_margin = min([margins[i]] + [a[0] - b[0] for a, b in zip(fin[i], fin[i][1:])])
        out.append(dict(sequence=seq, tokens=seq[1:], score=score, sum_logprobs=sum(lps),
                        token_logprobs=lps, finish_reason=why, margin=margins[i],
                        nbest=[dict(tokens=f[1][1:], score=f[0], token_logprobs=f[2], finish_reason=f[3])
                               for f in fin[i]],
                        nbest_margin=nbest_margin))
    return out
