#!/usr/bin/env bash
# Install ENT and everything it needs into the Python on PATH (use a virtualenv
# or conda environment if you want isolation: activate it first).
#
#   bash tools/setup.sh          # toolkit + runtime dependencies
#   bash tools/setup.sh --dev    # also what the test suite needs
#
# Safe to re-run: pip leaves satisfied requirements alone.
set -euo pipefail

extras=""
for arg in "$@"; do
  case "${arg}" in
    --dev) extras="[dev]" ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "$0: unknown option ${arg}" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}

if ! "${python}" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "$0: ENT needs Python >= 3.10 (found $(${python} --version 2>&1))" >&2
  exit 1
fi

echo "Installing ENT${extras} from ${root} into $(${python} -c 'import sys; print(sys.prefix)') ..."
"${python}" -m pip install --quiet --disable-pip-version-check -e "${root}${extras}"

# Check that the pieces that have bitten users import and work.
"${python}" - <<'PY'
import torch, torchaudio, soundfile, sentencepiece, espeakng_loader  # noqa: F401
import torchaudio.functional as F
logits = torch.zeros(1, 2, 2, 3, requires_grad=True)
F.rnnt_loss(logits, torch.tensor([[1]], dtype=torch.int32),
            torch.tensor([2], dtype=torch.int32), torch.tensor([1], dtype=torch.int32))
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    import espnet2.tasks.abs_task  # noqa: F401
print(f"OK: torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
      f"sentencepiece {sentencepiece.__version__}")
PY
