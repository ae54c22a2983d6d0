"""Tests of the token n-gram language model (Kneser-Ney training, ARPA, scorer)."""

import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest

from ent.lm.ngram import BOS, EOS, UNK, NgramLM, NgramScorer, train_ngram
from ent.utils.errors import DataError

VOCAB = list("abcde")


def _sentences(n=60, seed=0):
    rng = random.Random(seed)
    return [[rng.choice(VOCAB[:4]) for _ in range(rng.randint(1, 7))] for _ in range(n)]


def _reference_kn(sentences, order, vocab):
    """Interpolated Kneser-Ney straight from the counts (no back-off form)."""
    raw = Counter()
    for s in sentences:
        seq = (BOS,) + tuple(s) + (EOS,)
        for end in range(1, len(seq)):
            for k in range(1, order + 1):
                if end - k + 1 >= 0:
                    raw[seq[end - k + 1 : end + 1]] += 1

    def count(g):
        if len(g) == order or g[0] == BOS:
            return raw[g]
        return len({v[0] for v in raw if len(v) == len(g) + 1 and v[1:] == g})

    def discount(k):
        cs = [count(g) for g in raw if len(g) == k]
        n1, n2 = cs.count(1), cs.count(2)
        return 0.5 if not n1 or not n2 else min(0.9, max(0.1, n1 / (n1 + 2 * n2)))

    full_vocab = sorted(set(vocab) | {EOS, UNK} | {g[0] for g in raw if len(g) == 1})

    def prob(h, w):
        k = len(h) + 1
        if k == 1:
            d = discount(1)
            unis = [g for g in raw if len(g) == 1]
            total = sum(count(g) for g in unis)
            seen = max(count((w,)) - d, 0) / total if (w,) in raw else 0.0
            return seen + d * len(unis) / total / len(full_vocab)
        ext = [g for g in raw if len(g) == k and g[:-1] == h]
        if not ext:
            return prob(h[1:], w)
        d = discount(k)
        total = sum(count(g) for g in ext)
        seen = max(count(h + (w,)) - d, 0) / total if h + (w,) in raw else 0.0
        return seen + d * len(ext) / total * prob(h[1:], w)

    return prob, full_vocab


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_interpolated_kneser_ney_reference(order):
    sents = _sentences()
    lm = train_ngram(sents, order, vocabulary=VOCAB)
    ref, full_vocab = _reference_kn(sents, order, VOCAB)
    contexts = [()] + [c for n in range(1, order) for c in itertools.product([BOS] + VOCAB[:4], repeat=n)]
    contexts = [c for c in contexts if BOS not in c[1:]]
    for ctx in contexts:
        total = 0.0
        for w in full_vocab:
            lp = lm.logprob(ctx, w)
            h = ctx[max(0, len(ctx) - (order - 1)):] if order > 1 else ()
            assert lp == pytest.approx(math.log(ref(tuple(h), w)), abs=1e-9), (ctx, w)
            total += math.exp(lp)
        assert total == pytest.approx(1.0, abs=1e-9)
    assert lm.logprob([BOS], BOS) == float("-inf")


def test_higher_order_fits_its_training_text_better():
    sents = [list("abcab"), list("abcabc"), list("cab")] * 5
    ppl = [train_ngram(sents, n).perplexity(sents) for n in (1, 2, 3)]
    assert ppl[0] > ppl[1] > ppl[2]
    # An unseen token still has a probability (uniform share of the unigram mass).
    lm = train_ngram(sents, 3, vocabulary=["z"])
    assert -30 < lm.logprob(["a", "b"], "z") < lm.logprob(["a", "b"], "c")
    # A token outside the vocabulary scores as <unk>.
    assert lm.logprob(["a"], "q") == lm.logprob(["a"], UNK)


def test_arpa_round_trip(tmp_path):
    lm = train_ngram(_sentences(), 3, vocabulary=VOCAB)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    text = path.read_text()
    assert "\\data\\" in text and "\\3-grams:" in text and text.rstrip().endswith("\\end\\")
    back = NgramLM.read_arpa(path)
    assert back.order == 3
    for ctx in ([BOS], [BOS, "a"], ["b", "c"], ["e", "e"]):
        for w in VOCAB + [EOS]:
            assert back.logprob(ctx, w) == pytest.approx(lm.logprob(ctx, w), abs=1e-5)


@pytest.mark.parametrize(
    "content, where",
    [
        ("hello\n", "not an ARPA file"),
        ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t</s>\n\\end\\\n", "announces 2 1-grams"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\n-x\t</s>\n\\end\\\n", ":5: bad number"),
        ("\\data\\\nngram 1=1\n\n\\2-grams:\n-1\ta b\n\\end\\\n", ":4: unexpected section"),
        ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta b c d\n\\end\\\n", ":5: a 1-gram line"),
    ],
)
def test_bad_arpa_files_name_file_and_line(tmp_path, content, where):
    path = tmp_path / "bad.arpa"
    path.write_text(content)
    with pytest.raises(DataError, match=where) as err:
        NgramLM.read_arpa(path)
    assert str(path) in str(err.value)


def test_train_rejects_bad_input():
    with pytest.raises(ValueError):
        train_ngram([["a"]], 0)
    with pytest.raises(ValueError):
        train_ngram([], 2)
    with pytest.raises(ValueError):
        train_ngram([["a", EOS]], 2)


def test_scorer_vectors_match_model_and_state_reduction():
    sents = _sentences()
    lm = train_ngram(sents, 3, vocabulary=VOCAB)
    token_list = ["<blank>", "<unk>"] + VOCAB + ["f", "<sos/eos>"]
    scorer = NgramScorer(lm, token_list)
    state = scorer.initial_state()
    history = [BOS]
    for tok in ["a", "b", "e", "e", "c"]:
        vec = scorer.logprobs(state)
        assert vec.shape == (len(token_list),) and vec.dtype == np.float32
        assert vec[0] == -np.inf and vec[-1] == -np.inf
        for i, name in enumerate(token_list[1:-1], start=1):
            model_name = name if name in VOCAB else UNK
            assert vec[i] == pytest.approx(lm.logprob(history, model_name), abs=1e-5)
        assert scorer.final(state) == pytest.approx(lm.logprob(history, EOS))
        state = scorer.next_state(state, token_list.index(tok))
        history.append(tok)
        assert len(state) <= 2
    # "e" never occurs in training: after it the state forgets it.
    assert scorer.next_state(scorer.initial_state(), token_list.index("e")) == ()
