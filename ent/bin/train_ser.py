"""Train a SER baseline (ent.models.ser) with the SER task.

Example::

    python -m ent.bin.train_ser --config conf/train_attention_fcn.yaml \\
        --train_data_dir data/train --valid_data_dir data/dev \\
        --token_dir data/token_list/char --emotions neutral,happy,angry,sad \\
        --output_dir exp/ser_attention_fcn

Built on ESPnet's AbsTask/Trainer as ``ent.bin.train`` (``--resume true``,
model selection on the validation set, checkpoint averaging);
``--print_config`` shows every option. Decode with ``python -m ent.bin.ser_inference``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the arguments and train."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"espnet2\.")
    import torch

    from ent.tasks.ser_task import SERTask
    from ent.utils.errors import DataError

    # As ent.bin.train: denormal floats are flushed to zero while training (much
    # faster on x86 CPUs), and the process-wide flag is restored afterwards.
    torch.set_flush_denormal(True)
    try:
        SERTask.main(cmd=argv)
    except DataError as exc:  # bad configuration or data: one line, no traceback
        logging.error(str(exc))
        sys.exit(1)
    finally:
        torch.set_flush_denormal(False)


if __name__ == "__main__":
    main()
