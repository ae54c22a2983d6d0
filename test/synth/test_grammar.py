"""Tests of the sentence grammar (ent.synth.grammar)."""

from __future__ import annotations

import random
import re

import pytest

from ent.synth.grammar import (
    SentenceGrammar,
    make_disjoint_sentence_sets,
    normalize_text,
    vocabulary,
)

WORD_RE = re.compile(r"^[a-z]+$")


@pytest.fixture(scope="module")
def sample() -> list:
    rng = random.Random(123)
    grammar = SentenceGrammar()
    return [grammar.sentence(rng) for _ in range(20000)]


def test_vocabulary_has_at_least_500_words_and_covers_output(sample: list) -> None:
    vocab = vocabulary()
    assert len(vocab) >= 500
    used = {word for sentence in sample for word in sentence.split()}
    # The grammar really produces a large vocabulary, and nothing outside it.
    assert len(used) >= 500
    assert used <= vocab
    assert all(WORD_RE.match(word) for word in vocab)


def test_sentences_are_lower_case_words_of_allowed_length(sample: list) -> None:
    lengths = [len(s.split()) for s in sample]
    assert min(lengths) == 4 and max(lengths) == 12
    assert all(s == " ".join(s.split()) and all(WORD_RE.match(w) for w in s.split()) for s in sample)
    # Varied: nearly all sentences are distinct.
    assert len(set(sample)) > 0.99 * len(sample)


def test_length_limits_are_respected() -> None:
    rng = random.Random(0)
    grammar = SentenceGrammar(5, 7)
    lengths = {len(grammar.sentence(rng).split()) for _ in range(2000)}
    assert lengths == {5, 6, 7}
    for bad in ((3, 8), (6, 5), (4, 13)):
        with pytest.raises(ValueError):
            SentenceGrammar(*bad)


def test_deterministic_given_seed() -> None:
    grammar = SentenceGrammar()
    first = [grammar.sentence(random.Random(42)) for _ in range(3)]
    rng_a, rng_b, rng_c = random.Random(42), random.Random(42), random.Random(43)
    seq_a = [grammar.sentence(rng_a) for _ in range(200)]
    seq_b = [SentenceGrammar().sentence(rng_b) for _ in range(200)]
    seq_c = [grammar.sentence(rng_c) for _ in range(200)]
    assert seq_a == seq_b
    assert seq_a != seq_c
    assert first[0] == first[1] == first[2] == seq_a[0]


def test_spoken_form_punctuation() -> None:
    assert SentenceGrammar.spoken_form("did the cat see the dog") == "did the cat see the dog?"
    assert SentenceGrammar.spoken_form("the cat saw the dog") == "the cat saw the dog."


def test_normalize_text() -> None:
    assert normalize_text("  The Cat,  saw\tTHE dog! ") == "the cat saw the dog"


def test_disjoint_sets() -> None:
    sizes = {"train": 3000, "dev": 300, "test": 500, "test_sed": 600}
    grammars = {"test_sed": SentenceGrammar(4, 6)}
    sets = make_disjoint_sentence_sets(sizes, random.Random(7), grammars)
    assert {k: len(v) for k, v in sets.items()} == sizes
    keys = {name: {normalize_text(s) for s in sentences} for name, sentences in sets.items()}
    # No duplicates within a set ...
    assert all(len(keys[name]) == sizes[name] for name in sizes)
    # ... nor across sets.
    names = list(sizes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not keys[a] & keys[b], (a, b)
    assert max(len(s.split()) for s in sets["test_sed"]) <= 6
    again = make_disjoint_sentence_sets(sizes, random.Random(7), grammars)
    assert again == sets


class _ConstantGrammar:
    def sentence(self, rng: random.Random) -> str:
        rng.random()
        return "the same sentence every time"


def test_disjoint_sets_fail_when_grammar_is_exhausted() -> None:
    with pytest.raises(ValueError, match="distinct sentences for set 'dev'"):
        make_disjoint_sentence_sets(
            {"train": 1, "dev": 1}, random.Random(0), _ConstantGrammar(), max_tries_per_sentence=5
        )
    with pytest.raises(ValueError, match="negative"):
        make_disjoint_sentence_sets({"train": -1}, random.Random(0))
