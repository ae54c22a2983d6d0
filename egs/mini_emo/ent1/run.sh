#!/usr/bin/env bash
# mini_emo: synthetic English emotional speech (eSpeak NG); ENT and FENT,
# from synthesis to RESULTS.md.
# Usage: ./run.sh [--stage N] [--stop_stage N] [--nj N] [other ent.sh options]
set -euo pipefail

train_set=train
valid_set=dev
test_sets="test test_sed"    # WER, CER and utterance emotion accuracy
sed_sets="test_sed"          # emotion diarization (EDER)
train_configs="conf/train_ent.yaml conf/train_fent.yaml"

./ent.sh \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --sed_sets "${sed_sets}" \
    --train_configs "${train_configs}" \
    --decode_config conf/decode.yaml \
    --token_type char \
    "$@"
