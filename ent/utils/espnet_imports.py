"""Import ESPnet modules without their import-time noise.

``espnet.nets.pytorch_backend.transformer.attention`` prints "Failed to import
Flash Attention" to stdout when ``flash_attn`` is absent (it is optional and
not needed on CPU), and ESPnet's phonemizer front end tries an NLTK download
at import. ENT only imports the parts of ESPnet it needs (never the phonemizer)
and pre-imports the attention module here with its message swallowed, so that
user-facing output stays clean. Errors still propagate.
"""

from __future__ import annotations

import contextlib
import io

_done = False


def quiet_espnet_imports() -> None:
    """Pre-import ESPnet's attention module with its optional-dependency print silenced."""
    global _done
    if _done:
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        import espnet.nets.pytorch_backend.transformer.attention  # noqa: F401
    _done = True
