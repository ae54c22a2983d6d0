"""Token n-gram language models: Kneser-Ney training, ARPA files, scoring.

A :class:`NgramLM` is a back-off n-gram model over the tokens of a token list
(characters or subword pieces), stored in the ARPA format that SRILM and KenLM
read and write, so a model trained elsewhere on the same tokens loads too.
Sentences are wrapped in ``<s>`` ... ``</s>``; ``<s>`` is only ever a context.

:func:`train_ngram` estimates an interpolated Kneser-Ney model (Chen and
Goodman 1998, one discount per order ``D = n1 / (n1 + 2 n2)`` from the counts
of counts) and writes it in back-off form, which is exact: an n-gram seen in
training stores its interpolated probability, and a context ``h`` stores the
back-off weight ``D * N1+(h .) / c(h)`` that its interpolation gives the
lower order. The lowest order interpolates with the uniform distribution over
the vocabulary, so every token of the token list has a probability.

:class:`NgramScorer` binds a model to token ids for decoding: the log
probabilities of every token after a context at once (a cached ``(V,)``
vector), as shallow fusion in beam search needs them.

All probabilities in memory are natural logs; ARPA files hold log10.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]
Ngram = Tuple[str, ...]

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
LOG10 = math.log(10.0)
PACKED_LM_NAME = "lm.arpa"
"""File name of the language model inside a packed model directory."""
ARPA_NEG_INF = -99.0
"""log10 probability that ARPA files give ``<s>`` (never predicted)."""


class NgramLM:
    """A back-off n-gram model over token strings.

    ``log p(w | h) = prob[h + (w,)]`` when that n-gram is listed, otherwise
    ``bow[h] + log p(w | h[1:])`` (``bow`` 0 for a context that is not
    listed), down to the unigrams.

    Args:
        order: Highest n-gram order N (>= 1).
        probs: For each order k = 1..N (list index k - 1), n-gram -> natural
            log probability of its last token given the others.
        bows: For each order k = 1..N-1, n-gram -> natural log back-off
            weight when it is the context (absent: 0).

    Raises:
        ValueError: If the tables do not form a model of that order.
    """

    def __init__(self, order: int, probs: Sequence[Mapping[Ngram, float]], bows: Sequence[Mapping[Ngram, float]]) -> None:
        if order < 1 or len(probs) != order or len(bows) not in (order - 1, order):
            raise ValueError(f"an order-{order} model needs {order} probability tables, got {len(probs)}")
        self.order = order
        self.probs: List[Dict[Ngram, float]] = [dict(p) for p in probs]
        self.bows: List[Dict[Ngram, float]] = [dict(b) for b in bows[: order - 1]]
        for k, table in enumerate(self.probs, start=1):
            bad = next((g for g in table if len(g) != k), None)
            if bad is not None:
                raise ValueError(f"{len(bad)}-gram {' '.join(bad)!r} in the {k}-gram table")
        if EOS not in {g[0] for g in self.probs[0]}:
            raise ValueError(f"the unigrams must include {EOS}")

    @property
    def vocabulary(self) -> List[str]:
        """The unigrams, ``<s>`` included (ARPA order of the table)."""
        return [g[0] for g in self.probs[0]]

    def logprob(self, context: Sequence[str], token: str) -> float:
        """Natural log ``p(token | context)``; only the last N-1 context tokens count.

        A token that is not among the unigrams gets ``<unk>``'s probability
        (``-inf`` if the model has no ``<unk>``).
        """
        if (token,) not in self.probs[0]:
            token = UNK
            if (token,) not in self.probs[0]:
                return float("-inf")
        h = tuple(context)[max(0, len(context) - (self.order - 1)):]
        return _backoff_logprob(self.probs, self.bows, h, token)

    def sentence_logprob(self, tokens: Sequence[str]) -> float:
        """Natural log probability of ``<s> tokens </s>`` (the ``</s>`` term included)."""
        context: List[str] = [BOS]
        total = 0.0
        for tok in list(tokens) + [EOS]:
            total += self.logprob(context, tok)
            context.append(tok)
        return total

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """Per-token perplexity over sentences (each ``</s>`` counts as a token)."""
        total, count = 0.0, 0
        for tokens in sentences:
            total += self.sentence_logprob(tokens)
            count += len(tokens) + 1
        if count == 0:
            raise ValueError("perplexity of no sentences")
        return math.exp(-total / count)

    # ------------------------------------------------------------------ ARPA
    def write_arpa(self, path: PathLike) -> None:
        """Write the model as an ARPA file (log10), atomically."""
        lines = ["", "\\data\\"]
        lines += [f"ngram {k}={len(t)}" for k, t in enumerate(self.probs, start=1)]
        for k, table in enumerate(self.probs, start=1):
            lines += ["", f"\\{k}-grams:"]
            bows = self.bows[k - 1] if k < self.order else {}
            for g, p in table.items():
                lp = ARPA_NEG_INF if p == float("-inf") else p / LOG10
                line = f"{lp:.7g}\t{' '.join(g)}"
                if g in bows:
                    line += f"\t{bows[g] / LOG10:.7g}"
                lines.append(line)
        lines += ["", "\\end\\", ""]
        with atomic_write(path) as fh:
            fh.write("\n".join(lines))

    @classmethod
    def read_arpa(cls, path: PathLike) -> "NgramLM":
        """Read an ARPA file (SRILM, KenLM or :meth:`write_arpa`).

        Raises:
            DataError: On a malformed file, naming the file and line.
        """
        counts: Dict[int, int] = {}
        probs: List[Dict[Ngram, float]] = []
        bows: List[Dict[Ngram, float]] = []
        section = None  # None: before \data\, 0: in \data\, k: in \k-grams:
        ended = False
        with open(path, encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = raw.strip()
                if not line or ended:
                    continue
                if line == "\\data\\":
                    section = 0
                    continue
                if line == "\\end\\":
                    ended = True
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    try:
                        k = int(line[1 : -len("-grams:")])
                    except ValueError:
                        raise DataError(path, lineno, f"bad section header {line!r}") from None
                    if k != len(probs) + 1 or k not in counts:
                        raise DataError(path, lineno, f"unexpected section {line!r}")
                    probs.append({})
                    bows.append({})
                    section = k
                    continue
                if section is None:
                    continue  # free text before \data\ is allowed
                if section == 0:
                    if not line.startswith("ngram ") or "=" not in line:
                        raise DataError(path, lineno, f"expected 'ngram N=COUNT', got {line!r}")
                    key, _, value = line[len("ngram "):].partition("=")
                    try:
                        counts[int(key)] = int(value)
                    except ValueError:
                        raise DataError(path, lineno, f"bad count line {line!r}") from None
                    continue
                fields = line.split()
                k = section
                if len(fields) not in (k + 1, k + 2):
                    raise DataError(path, lineno, f"a {k}-gram line needs {k + 1} or {k + 2} fields, got {len(fields)}")
                try:
                    lp = float(fields[0])
                    bow = float(fields[k + 1]) if len(fields) == k + 2 else None
                except ValueError:
                    raise DataError(path, lineno, f"bad number in {line!r}") from None
                g = tuple(fields[1 : k + 1])
                probs[k - 1][g] = float("-inf") if lp <= ARPA_NEG_INF else lp * LOG10
                if bow is not None and bow != 0.0:
                    bows[k - 1][g] = bow * LOG10
        if not counts or not probs:
            raise DataError(path, None, "not an ARPA file (no \\data\\ section or no n-grams)")
        if sorted(counts) != list(range(1, len(probs) + 1)):
            raise DataError(path, None, f"\\data\\ announces orders {sorted(counts)}, the file has 1..{len(probs)}")
        for k, table in enumerate(probs, start=1):
            if len(table) != counts[k]:
                raise DataError(path, None, f"\\data\\ announces {counts[k]} {k}-grams, the file has {len(table)}")
        try:
            return cls(len(probs), probs, bows)
        except ValueError as err:
            raise DataError(path, None, str(err)) from None


def _backoff_logprob(
    probs: Sequence[Mapping[Ngram, float]], bows: Sequence[Mapping[Ngram, float]], h: Ngram, token: str
) -> float:
    """Back-off ``log p(token | h)`` from the tables; ``(token,)`` must be a listed unigram.

    Reads only the tables of orders up to ``len(h) + 1``, so it also serves
    while :func:`train_ngram` is still filling the higher ones.
    """
    backoff = 0.0
    while True:  # ends at the unigram, which exists
        p = probs[len(h)].get(h + (token,))
        if p is not None:
            return backoff + p
        backoff += bows[len(h) - 1].get(h, 0.0)
        h = h[1:]


def _discount(counts: Iterable[int]) -> float:
    """Kneser-Ney discount ``n1 / (n1 + 2 n2)`` from the counts of counts, in [0.1, 0.9]."""
    n1 = n2 = 0
    for c in counts:
        n1 += c == 1
        n2 += c == 2
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(0.9, max(0.1, n1 / (n1 + 2.0 * n2)))


def train_ngram(sentences: Iterable[Sequence[str]], order: int, vocabulary: Iterable[str] = ()) -> NgramLM:
    """Estimate an interpolated Kneser-Ney model.

    Args:
        sentences: Token sequences (without ``<s>``/``</s>``).
        order: Highest order N (>= 1).
        vocabulary: Tokens that get a unigram even if unseen (e.g. the whole
            token list); ``</s>`` and ``<unk>`` always do.

    Returns:
        The model in back-off form (:class:`NgramLM`).

    Raises:
        ValueError: If ``order < 1``, there is no sentence, or a token is ``<s>``/``</s>``.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    raw: List[Dict[Ngram, int]] = [defaultdict(int) for _ in range(order)]
    num_sentences = 0
    for tokens in sentences:
        toks = tuple(tokens)
        if BOS in toks or EOS in toks:
            raise ValueError(f"sentence {' '.join(toks)!r} contains {BOS} or {EOS}")
        seq = (BOS,) + toks + (EOS,)
        num_sentences += 1
        for end in range(1, len(seq)):  # the predicted token seq[end]; <s> never is
            for k in range(1, order + 1):
                if end - k + 1 < 0:
                    break
                raw[k - 1][seq[end - k + 1 : end + 1]] += 1
    if num_sentences == 0:
        raise ValueError("no training sentence")

    # Kneser-Ney counts: the highest order keeps raw counts; a lower-order
    # n-gram counts its distinct left extensions, except at the sentence start
    # (a <s>-initial n-gram has none and keeps its raw count, as in SRILM/KenLM).
    adjusted: List[Dict[Ngram, int]] = [dict() for _ in range(order)]
    adjusted[order - 1] = dict(raw[order - 1])
    for k in range(order - 1, 0, -1):
        left: Dict[Ngram, int] = defaultdict(int)
        for g in raw[k]:  # (k+1)-grams
            left[g[1:]] += 1
        adjusted[k - 1] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[k - 1].items()}

    vocab = {g[0] for g in raw[0]} | {EOS, UNK} | (set(vocabulary) - {BOS})
    uniform = -math.log(len(vocab))
    probs: List[Dict[Ngram, float]] = [dict() for _ in range(order)]
    bows: List[Dict[Ngram, float]] = [dict() for _ in range(order - 1)]

    for k in range(1, order + 1):
        table = adjusted[k - 1]
        d = _discount(table.values())
        total: Dict[Ngram, int] = defaultdict(int)
        types: Dict[Ngram, int] = defaultdict(int)
        for g, c in table.items():
            total[g[:-1]] += c
            types[g[:-1]] += 1
        gamma = {h: d * types[h] / total[h] for h in total}  # mass left to the lower order
        if k == 1:
            (g0,) = gamma.values()
            lower = math.log(g0) + uniform
            probs[0] = {(w,): lower for w in sorted(vocab)}
            for g, c in table.items():
                probs[0][g] = math.log((c - d) / total[()] + g0 * math.exp(uniform))
            probs[0][(BOS,)] = float("-inf")
            continue
        for g, c in sorted(table.items()):
            h = g[:-1]
            p = (c - d) / total[h] + gamma[h] * math.exp(_backoff_logprob(probs, bows, h[1:], g[-1]))
            probs[k - 1][g] = math.log(p)
        for h, gmm in gamma.items():
            if h not in probs[k - 2]:
                raise AssertionError(f"internal error: context {h} is not a listed {k - 1}-gram")
            bows[k - 2][h] = math.log(gmm)
    return NgramLM(order, probs, bows)


class NgramScorer:
    """An :class:`NgramLM` over the ids of a token list, for shallow fusion.

    A state is the tuple of the last (at most N-1) token ids, reduced to the
    longest suffix that is a listed context (so equal futures share one cache
    entry). ``<blank>`` and ``<sos/eos>`` of the token list get ``-inf``
    (neither is a token the search emits), other tokens missing from the
    model get ``<unk>``'s probability.

    Args:
        lm: The model.
        token_list: The token list (``<blank>`` first, ``<sos/eos>`` last).
    """

    def __init__(self, lm: NgramLM, token_list: Sequence[str]) -> None:
        self.lm = lm
        self.token_list = list(token_list)
        self.vocab_size = len(self.token_list)
        self._index: Dict[str, int] = {tok: i for i, tok in enumerate(self.token_list)}
        self._cache: Dict[Tuple[int, ...], np.ndarray] = {}
        known = {g[0] for g in lm.probs[0]}
        unk = UNK if UNK in known else None
        # Model token of each id (None: -inf).
        self._names: List[Optional[str]] = []
        for i, tok in enumerate(self.token_list):
            if i == 0 or i == self.vocab_size - 1:
                self._names.append(None)
            else:
                self._names.append(tok if tok in known else unk)
        self._eos_cache: Dict[Tuple[int, ...], float] = {}
        self._next_cache: Dict[Tuple[Tuple[int, ...], int], Tuple[int, ...]] = {}
        # Contexts of each length, as id tuples: n-grams that other n-grams
        # extend or that carry a back-off weight. Any other history scores
        # like its suffix, so states drop it (for state reduction).
        self._contexts: List[set] = [set() for _ in range(lm.order)]
        for k in range(1, lm.order):
            for g in list(lm.bows[k - 1]) + [g[:-1] for g in lm.probs[k]]:
                ids = tuple(self._index.get(t, -1) if t != BOS else -2 for t in g)
                if -1 not in ids:
                    self._contexts[k].add(ids)

    def initial_state(self) -> Tuple[int, ...]:
        """The state before the first token (``<s>``, id -2)."""
        return self._reduce((-2,))

    def _reduce(self, state: Tuple[int, ...]) -> Tuple[int, ...]:
        state = state[max(0, len(state) - (self.lm.order - 1)):]
        while state and state not in self._contexts[len(state)]:
            state = state[1:]
        return state

    def next_state(self, state: Tuple[int, ...], token: int) -> Tuple[int, ...]:
        """The state after ``token``."""
        key = (state, token)
        nxt = self._next_cache.get(key)
        if nxt is None:
            nxt = self._next_cache[key] = self._reduce(state + (int(token),))
        return nxt

    def _names_of(self, state: Tuple[int, ...]) -> List[str]:
        return [BOS if i == -2 else self.token_list[i] for i in state]

    def logprobs(self, state: Tuple[int, ...]) -> np.ndarray:
        """Natural log probability of every token id after ``state``. (V,) float32"""
        vec = self._cache.get(state)
        if vec is None:
            context = self._names_of(state)
            vec = np.array(
                [float("-inf") if name is None else self.lm.logprob(context, name) for name in self._names],
                dtype=np.float32,
            )
            self._cache[state] = vec
        return vec

    def final(self, state: Tuple[int, ...]) -> float:
        """Natural log probability of ``</s>`` after ``state``."""
        value = self._eos_cache.get(state)
        if value is None:
            value = self.lm.logprob(self._names_of(state), EOS)
            self._eos_cache[state] = value
        return value
