#!/usr/bin/env bash
# mini_emo: synthetic English emotional speech (eSpeak NG), ENT and FENT.
# Usage: ./run.sh [--stage N] [--stop_stage N] [--nj N] [other ent.sh options]
set -euo pipefail

train_set=train
valid_set=dev
test_sets="test test_sed"

./ent.sh \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --token_type bpe \
    --nbpe 200 \
    "$@"
