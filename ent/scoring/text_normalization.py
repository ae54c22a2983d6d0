"""Which text normalization scoring applies to references and hypotheses.

A model's targets are transcripts normalized by
:func:`ent.text.normalize.normalize_text` with the options of its token
list (``<token_dir>/config.yaml``, written by ``ent.bin.train_tokenizer``:
``case``, ``keep_apostrophe``, ``remove_tags`` and the protected
``user_defined_symbols``). Scoring a Kaldi-style reference such as
``SAY THE WORD "BITE", [NOISE] PLEASE.`` against the model's output
``say the word bite please`` is only meaningful after the *same*
normalization of both sides.

``ent.bin.inference`` records it in the decoding directory as
``text_normalization.json`` (:data:`RECORD_NAME`)::

    {"case": "lower", "keep_apostrophe": true, "remove_tags": true,
     "user_defined_symbols": ["<noise>"], "token_dir": "/abs/data/token_list/bpe200"}

and ``ent.bin.score`` finds it with :func:`find_normalization`, in this
order: an explicit token dir (``--token-dir``); the record of the decoding
directory; the ``token_dir`` of a model config (``config.yaml``) one or two
levels above the decoding directory (``exp/<model>/decode_<tag>/<set>``,
decoded before the record existed); else the defaults of
:func:`~ent.text.normalize.normalize_text`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ent.text.normalize import CASES, normalize_text
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

#: Name of the record written into a decoding directory.
RECORD_NAME = "text_normalization.json"
#: Name of a token dir's options file (``ent.bin.train_tokenizer``).
TOKEN_CONFIG_NAME = "config.yaml"

_DEFAULTS: Dict[str, Any] = {"case": "lower", "keep_apostrophe": True, "remove_tags": True}


@dataclass(frozen=True)
class TextNormalization:
    """Options of :func:`~ent.text.normalize.normalize_text`, and where they came from.

    Calling the object normalizes a transcript (``str -> str``), as
    :meth:`ent.text.tokenizer.Tokenizer.normalize` does for its token list.

    Attributes:
        case: ``"lower"``, ``"upper"`` or ``"keep"``.
        keep_apostrophe: Keep in-word apostrophes.
        remove_tags: Remove bracketed tags (``[noise]``, ``<laugh>``).
        user_defined_symbols: Symbols kept verbatim (protected from tag
            removal, case mapping and punctuation removal).
        token_dir: The token dir the options belong to (``None`` for the
            defaults).
        source: Human-readable origin (a file, or ``"default"``); not
            written into the record.
    """

    case: str = "lower"
    keep_apostrophe: bool = True
    remove_tags: bool = True
    user_defined_symbols: Tuple[str, ...] = ()
    token_dir: Optional[str] = None
    source: str = field(default="default", compare=False)

    def __call__(self, text: str) -> str:
        return normalize_text(
            text, case=self.case, keep_apostrophe=self.keep_apostrophe, remove_tags=self.remove_tags,
            keep=self.user_defined_symbols,
        )

    def options(self) -> Dict[str, Any]:
        """The normalization options with the token dir (the record's content)."""
        return {
            "case": self.case,
            "keep_apostrophe": self.keep_apostrophe,
            "remove_tags": self.remove_tags,
            "user_defined_symbols": list(self.user_defined_symbols),
            "token_dir": self.token_dir,
        }

    def to_dict(self) -> Dict[str, Any]:
        """:meth:`options` plus ``source`` (for ``scores.json``)."""
        out = self.options()
        out["source"] = self.source
        return out

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``case=lower, keep_apostrophe, remove_tags (from X)``."""
        flags = [f"case={self.case}", "keep_apostrophe" if self.keep_apostrophe else "no apostrophes",
                 "remove_tags" if self.remove_tags else "keep tags"]
        if self.user_defined_symbols:
            flags.append("protected " + " ".join(self.user_defined_symbols))
        return ", ".join(flags) + f" (from {self.source})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any], path: PathLike, source: Optional[str] = None,
                     token_dir: Optional[str] = None) -> "TextNormalization":
        """Build from a mapping (record or token config); missing keys take the defaults.

        Args:
            options: ``case``, ``keep_apostrophe``, ``remove_tags``,
                ``user_defined_symbols`` (others are ignored).
            path: The file the mapping was read from (named in errors).
            source: ``source`` of the result (default: ``path``).
            token_dir: Token dir (default: ``options["token_dir"]``).

        Raises:
            DataError: If a value has the wrong type or ``case`` is unknown.
        """
        values = dict(_DEFAULTS)
        values.update({k: options[k] for k in _DEFAULTS if k in options and options[k] is not None})
        if values["case"] not in CASES:
            raise DataError(path, None, f"case '{values['case']}' is not one of {', '.join(CASES)}")
        for key in ("keep_apostrophe", "remove_tags"):
            if not isinstance(values[key], bool):
                raise DataError(path, None, f"{key} must be true or false, not {values[key]!r}")
        symbols = options.get("user_defined_symbols") or []
        if isinstance(symbols, str):  # a comma-separated string
            symbols = [s for s in symbols.split(",") if s]
        if not isinstance(symbols, (list, tuple)) or not all(isinstance(s, str) and s for s in symbols):
            raise DataError(path, None, f"user_defined_symbols must be a list of symbols, not {symbols!r}")
        if token_dir is None:
            raw = options.get("token_dir")
            token_dir = None if raw is None else str(raw)
        return cls(values["case"], values["keep_apostrophe"], values["remove_tags"], tuple(symbols),
                   token_dir, source if source is not None else str(path))

    @classmethod
    def from_token_dir(cls, token_dir: PathLike) -> "TextNormalization":
        """The normalization of a token list (``<token_dir>/config.yaml``).

        Raises:
            DataError: If the config is missing, not YAML or has bad values.
        """
        import yaml

        config = Path(token_dir) / TOKEN_CONFIG_NAME
        if not config.is_file():
            raise DataError(config, None, "tokenizer config not found")
        try:
            with open(config, encoding="utf-8") as fh:
                conf = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise DataError(config, mark.line + 1 if mark else None, "not valid YAML") from None
        if not isinstance(conf, dict):
            raise DataError(config, None, "expected a mapping")
        return cls.from_options(conf, config, token_dir=str(Path(token_dir).resolve()))

    @classmethod
    def read(cls, path: PathLike) -> "TextNormalization":
        """Read a :data:`RECORD_NAME` record.

        Raises:
            DataError: If the file is not a JSON object of valid options.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(path, exc.lineno, f"not valid JSON: {exc.msg}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(path, None, f"cannot read file: {exc}") from None
        if not isinstance(data, dict):
            raise DataError(path, None, "expected a JSON object")
        return cls.from_options(data, path)

    def write(self, path: PathLike) -> None:
        """Atomically write the record (:meth:`options`) to ``path``."""
        with atomic_write(path) as fh:
            json.dump(self.options(), fh, indent=2, ensure_ascii=False, allow_nan=False)
            fh.write("\n")


def write_normalization_record(decode_dir: PathLike, token_dir: PathLike) -> Path:
    """Record the normalization of ``token_dir`` in a decoding directory.

    Args:
        decode_dir: The decoding directory (``--out-dir`` of inference).
        token_dir: The model's token dir.

    Returns:
        The written :data:`RECORD_NAME` path.
    """
    path = Path(decode_dir) / RECORD_NAME
    TextNormalization.from_token_dir(token_dir).write(path)
    return path


def _model_token_dir(hyp_dir: Path) -> Optional[Tuple[Path, Path]]:
    """``(model config, token dir)`` of a model dir one or two levels above ``hyp_dir``, if any.

    The token dir named in the config is taken as given (relative to the
    current directory, where a recipe runs), else relative to the model dir
    (a packed model's ``tokens``), as :class:`~ent.decoding.recognizer.EmotionRecognizer` does.
    """
    import yaml

    hyp_dir = hyp_dir.resolve()
    for model_dir in dict.fromkeys((hyp_dir.parent, hyp_dir.parent.parent)):
        config = model_dir / "config.yaml"
        if not config.is_file():
            continue
        try:
            with open(config, encoding="utf-8") as fh:
                conf = yaml.safe_load(fh)
        except yaml.YAMLError:
            logger.warning("%s is not valid YAML: not used to find the text normalization", config)
            continue
        if not isinstance(conf, dict) or not isinstance(conf.get("token_dir"), str):
            continue
        name = conf["token_dir"]
        for cand in (Path(name), model_dir / name, model_dir / Path(name).name):
            if (cand / TOKEN_CONFIG_NAME).is_file():
                return config, cand
        logger.warning("%s names token_dir '%s', which has no %s here", config, name, TOKEN_CONFIG_NAME)
    return None


def find_normalization(hyp_dir: PathLike, token_dir: Optional[PathLike] = None) -> TextNormalization:
    """The normalization to score a decoding directory with (order in the module docstring).

    Args:
        hyp_dir: The decoding directory.
        token_dir: An explicit token dir; overrides everything else.

    Returns:
        The normalization; its ``source`` says where it was found. Which one
        is used is logged.

    Raises:
        DataError: If an explicit token dir or a record is unreadable.
    """
    hyp_dir = Path(hyp_dir)
    if token_dir is not None:
        norm = TextNormalization.from_token_dir(token_dir)
        norm = _with_source(norm, str(Path(token_dir) / TOKEN_CONFIG_NAME))
        logger.info("text normalization of the token dir %s: %s", token_dir, norm.describe())
        return norm
    record = hyp_dir / RECORD_NAME
    if record.is_file():
        norm = TextNormalization.read(record)
        logger.info("text normalization recorded by the decoding: %s", norm.describe())
        return norm
    found = _model_token_dir(hyp_dir)
    if found is not None:
        config, model_tokens = found
        norm = _with_source(TextNormalization.from_token_dir(model_tokens),
                            f"{model_tokens / TOKEN_CONFIG_NAME}, named by {config}")
        logger.info("no %s in %s; text normalization of the model's token dir: %s", RECORD_NAME, hyp_dir,
                    norm.describe())
        return norm
    norm = TextNormalization()
    logger.warning("no %s in %s and no model config above it: scoring with the default text normalization "
                   "(%s); give --token-dir to use a model's", RECORD_NAME, hyp_dir, norm.describe())
    return norm


def _with_source(norm: TextNormalization, source: str) -> TextNormalization:
    return dataclasses.replace(norm, source=source)
