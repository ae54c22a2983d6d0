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

from typing import List, Optional

from ent.bin.train import train_task


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the arguments and train (as ``ent.bin.train``: one-line errors, denormals flushed)."""
    from ent.tasks.ser_task import SERTask

    train_task(SERTask, argv)


if __name__ == "__main__":
    main()
