# Environment for the recipe: the toolkit from this checkout, unbuffered logs.
ENT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
export ENT_ROOT
export PYTHONPATH="${ENT_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export PYTHONUNBUFFERED=1
export PYTHONIOENCODING=UTF-8
