"""Sentencepiece tokenizers (char, BPE, unigram) and ESPnet-style token lists.

Token list convention (ESPnet's): ``tokens.txt`` holds one token per line and
a token's id is its 0-based line number::

    <blank>        0   (transducer/CTC blank, never produced by encode)
    <unk>          1   (unknown characters)
    <user symbols> 2.. (user_defined_symbols, in the given order)
    ...pieces...       (sentencepiece pieces in sentencepiece id order)
    <sos/eos>      last

All three token types are trained with sentencepiece 0.2.0 and saved as a
sentencepiece model, so one :class:`Tokenizer` class serves all of them:

* ``char``: sentencepiece's character model. The word boundary "▁" (U+2581)
  is a token of its own, emitted before the first character of every word
  (``"hi yo"`` → ``▁ h i ▁ y o``), as in ESPnet's char lists with "▁" as
  space symbol.
* ``bpe`` / ``unigram``: subword pieces; a piece that starts a word begins with
  "▁" (``"▁hel" "lo"``), or a lone "▁" precedes a word whose first piece has
  no "▁" form.

Either way :meth:`Tokenizer.is_word_start` is true exactly for tokens that
begin with "▁", which is what word timestamps need.

Training is deterministic: one thread, no input sampling or shuffling, a fixed
random seed, and sentencepiece's own text normalization disabled
(``identity``), since transcripts are normalized by
:func:`ent.text.normalize.normalize_text` first. For the same texts and
options the model and token list are identical byte for byte.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import sentencepiece as spm

from ent.text.normalize import normalize_text
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write, read_lines

PathLike = Union[str, Path]

BLANK = "<blank>"
UNK = "<unk>"
SOS_EOS = "<sos/eos>"
WORD_BOUNDARY = "\u2581"
TOKEN_TYPES = ("char", "bpe", "unigram")
SEED = 0

logger = logging.getLogger(__name__)


def train_tokenizer(
    texts: Iterable[str],
    model_prefix: PathLike,
    token_type: str = "bpe",
    nbpe: int = 200,
    character_coverage: float = 1.0,
    user_defined_symbols: Sequence[str] = (),
    token_list_path: Optional[PathLike] = None,
    hard_vocab_limit: bool = False,
) -> List[str]:
    """Train a sentencepiece model and write it with its token list.

    Args:
        texts: Training sentences, already normalized (empty ones are
            skipped).
        model_prefix: Output prefix; the model is written to
            ``<model_prefix>.model``.
        token_type: ``"char"``, ``"bpe"`` or ``"unigram"``.
        nbpe: Sentencepiece vocabulary size for ``bpe``/``unigram`` (it counts
            sentencepiece's ``<unk>`` and the user symbols, not ``<blank>`` or
            ``<sos/eos>``: the token list has ``nbpe + 2`` entries). Ignored for ``char``, whose vocabulary is every
            character of the training text.
        character_coverage: Fraction of characters covered by the model (rarer
            characters become ``<unk>``).
        user_defined_symbols: Symbols always kept as single tokens.
        token_list_path: Where to write the token list (default:
            ``tokens.txt`` beside the model).
        hard_vocab_limit: If true, fail when the texts cannot give ``nbpe``
            pieces; if false (default) the vocabulary may come out smaller,
            with a warning.

    Returns:
        The token list (index = token id).

    Raises:
        ValueError: On an unknown token type, no training text, or
            sentencepiece's refusal of the options.
    """
    if token_type not in TOKEN_TYPES:
        raise ValueError(f"token_type must be one of {TOKEN_TYPES}, not {token_type!r}")
    sentences = [t.strip() for t in texts if t.strip()]
    if not sentences:
        raise ValueError("no training text for the tokenizer (all sentences empty)")
    for sym in user_defined_symbols:
        if sym in (BLANK, UNK, SOS_EOS) or not sym or any(c.isspace() for c in sym):
            raise ValueError(f"invalid user-defined symbol {sym!r}")
    if token_type == "char":
        chars = {c for s in sentences for c in s if not c.isspace()}
        vocab_size = len(chars) + 2 + len(user_defined_symbols)  # + <unk> + "▁"
    else:
        vocab_size = nbpe
    model_path = Path(f"{model_prefix}.model")
    writer = io.BytesIO()
    spm.set_random_generator_seed(SEED)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=writer,
            model_type=token_type,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            user_defined_symbols=list(user_defined_symbols),
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            normalization_rule_name="identity",
            hard_vocab_limit=hard_vocab_limit if token_type != "char" else False,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise ValueError(f"sentencepiece training failed: {str(exc).strip()}") from None
    proto = writer.getvalue()
    sp = spm.SentencePieceProcessor(model_proto=proto)
    if token_type != "char" and sp.get_piece_size() < nbpe:
        logger.warning(
            "the training text yields only %d %s pieces (asked for %d)", sp.get_piece_size(), token_type, nbpe
        )
    tokens = [BLANK, UNK] + [sp.id_to_piece(i) for i in range(1, sp.get_piece_size())] + [SOS_EOS]
    with atomic_write(model_path, "wb") as fh:
        fh.write(proto)
    if token_list_path is None:
        token_list_path = model_path.parent / "tokens.txt"
    write_token_list(tokens, token_list_path)
    logger.info("trained a %s tokenizer with %d tokens: %s", token_type, len(tokens), model_path)
    return tokens


def write_token_list(tokens: Sequence[str], path: PathLike) -> None:
    """Atomically write a token list, one token per line."""
    with atomic_write(path) as fh:
        for tok in tokens:
            fh.write(tok + "\n")


def read_token_list(path: PathLike) -> List[str]:
    """Read and check a token list (``<blank>`` first, ``<unk>`` second, ``<sos/eos>`` last).

    Raises:
        DataError: If the file is unreadable, has an empty or repeated token,
            or breaks the convention.
    """
    tokens = read_lines(path)
    seen: Dict[str, int] = {}
    for lineno, tok in enumerate(tokens, start=1):
        if not tok or tok != tok.strip():
            raise DataError(path, lineno, "empty token or surrounding whitespace")
        if tok in seen:
            raise DataError(path, lineno, f"duplicate token '{tok}' (first on line {seen[tok]})")
        seen[tok] = lineno
    if len(tokens) < 3 or tokens[0] != BLANK or tokens[1] != UNK or tokens[-1] != SOS_EOS:
        raise DataError(path, None, f"token list must start with {BLANK}, {UNK} and end with {SOS_EOS}")
    return tokens


def _user_defined_symbols(sp: spm.SentencePieceProcessor) -> List[str]:
    """The user-defined symbols of a loaded sentencepiece model."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(sp.serialized_model_proto())
    user_defined = sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
    return [p.piece for p in proto.pieces if p.type == user_defined]


class Tokenizer:
    """Text ↔ token ids with a sentencepiece model and an ESPnet token list.

    Args:
        model_path: Sentencepiece ``.model`` file.
        token_list: Token list (a ``tokens.txt`` path or the list itself).
        text_options: Keyword arguments of
            :func:`~ent.text.normalize.normalize_text` (``case``,
            ``keep_apostrophe``, ``remove_tags``) used by :meth:`normalize`
            and by :meth:`encode`; ``None`` disables normalization.

    Pieces of the model that are missing from the token list (e.g. with a
    frequency-pruned ESPnet list) and unknown characters map to ``<unk>``.
    """

    def __init__(
        self,
        model_path: PathLike,
        token_list: Union[PathLike, Sequence[str]],
        text_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise DataError(self.model_path, None, "sentencepiece model not found")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        if isinstance(token_list, (str, Path)):
            self.token_list = read_token_list(token_list)
        else:
            self.token_list = list(token_list)
            if self.token_list[:2] != [BLANK, UNK] or self.token_list[-1] != SOS_EOS:
                raise ValueError(f"token list must start with {BLANK}, {UNK} and end with {SOS_EOS}")
        self.text_options: Optional[Dict[str, Any]] = None if text_options is None else dict(text_options)
        index = {tok: i for i, tok in enumerate(self.token_list)}
        self.unk_id = 1
        self.blank_id = 0
        self.sos_eos_id = len(self.token_list) - 1
        # sentencepiece id -> token id
        self._sp2tok = [
            self.unk_id if self.sp.is_unknown(i) else index.get(self.sp.id_to_piece(i), self.unk_id)
            for i in range(self.sp.get_piece_size())
        ]
        self._user_symbols = _user_defined_symbols(self.sp)

    @classmethod
    def from_dir(cls, token_dir: PathLike) -> "Tokenizer":
        """Load what :mod:`ent.bin.train_tokenizer` wrote (``config.yaml``, model, ``tokens.txt``)."""
        import yaml

        token_dir = Path(token_dir)
        config_path = token_dir / "config.yaml"
        if not config_path.is_file():
            raise DataError(config_path, None, "tokenizer config not found")
        with open(config_path, encoding="utf-8") as fh:
            conf = yaml.safe_load(fh)
        if not isinstance(conf, dict):
            raise DataError(config_path, None, "expected a mapping")
        text_options = {k: conf[k] for k in ("case", "keep_apostrophe", "remove_tags") if k in conf}
        return cls(
            token_dir / conf.get("model", "bpe.model"),
            token_dir / conf.get("token_list", "tokens.txt"),
            text_options=text_options,
        )

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        """Number of tokens, ``<blank>`` and ``<sos/eos>`` included."""
        return len(self.token_list)

    # ------------------------------------------------------------------ text
    def normalize(self, text: str) -> str:
        """Apply the training-time normalization (identity without ``text_options``)."""
        if self.text_options is None:
            return text
        return normalize_text(text, keep=self._user_symbols, **self.text_options)

    def encode(self, text: str, normalize: bool = True) -> List[int]:
        """Text → token ids (never 0 = ``<blank>``, never ``<sos/eos>``).

        Args:
            text: A transcript.
            normalize: Normalize first (see :meth:`normalize`).
        """
        if normalize:
            text = self.normalize(text)
        return [self._sp2tok[i] for i in self.sp.encode(text)]

    def tokens(self, ids: Iterable[int]) -> List[str]:
        """Token ids → token strings.

        Raises:
            IndexError: For an id outside the token list.
        """
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.token_list):
                raise IndexError(f"token id {i} outside the token list (size {len(self.token_list)})")
            out.append(self.token_list[i])
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids → text; ``<blank>`` and ``<sos/eos>`` are skipped, "▁" becomes a space."""
        toks = [t for t in self.tokens(ids) if t not in (BLANK, SOS_EOS)]
        text = "".join(toks)
        return " ".join(text.replace(WORD_BOUNDARY, " ").split())

    def is_word_start(self, token_id: int) -> bool:
        """Whether the token begins a word (its text starts with "▁")."""
        return self.token_list[int(token_id)].startswith(WORD_BOUNDARY)

    def __repr__(self) -> str:
        return f"Tokenizer(model={self.model_path}, vocab_size={self.vocab_size})"
