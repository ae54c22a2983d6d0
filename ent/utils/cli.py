"""What every command-line tool shares: the log format and its set-up."""

from __future__ import annotations

import logging
from typing import Union

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def setup_logging(level: Union[int, str] = logging.INFO) -> None:
    """Log to stderr in ENT's format (``time (module:line) LEVEL: message``)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
