#!/usr/bin/env bash
# Data preparation of mini_emo: synthesize the corpus with eSpeak NG.
#
# Run from the recipe folder (egs/mini_emo/ent1). Writes Kaldi-style data
# directories ${datadir}/{train,dev,test,test_sed}/ and 16 kHz WAV files under
# ${wavdir}/<set>/; wav.scp holds paths relative to the recipe folder when
# ${wavdir} lies inside it. A set that is already finished (its .done marker
# matches the options) is skipped; --force true regenerates it.
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

seed=0            # Master random seed (same seed: byte-identical corpus).
nj=2              # Parallel synthesis processes (does not change the output).
num_train=2000    # Training utterances.
num_dev=200       # Validation utterances.
num_test=400      # Test utterances (balanced over the 4 emotions, held-out voices).
num_test_sed=200  # Emotion diarization utterances (ZED-like, held-out voices).
multi_sentence_every=0  # Every N-th train/dev utterance joins 2-3 sentences (like test_sed); 0: none.
noise_prob=0.3    # Probability that an utterance gets background noise.
snr_low=10        # Lowest SNR of the background noise in dB.
snr_high=30       # Highest SNR of the background noise in dB.
backend=auto      # eSpeak NG back end: auto, ctypes (espeakng-loader) or program (espeak-ng).
datadir=data      # Where the data directories are written.
wavdir=wav        # Where the WAV files are written.
force=false       # true: regenerate sets that are already finished.
oracle_intervals=false  # true: also write train_oracle/ and dev_oracle/, whose emo_segments are the
                        # synthesizer's intervals (an oracle that real corpora never have).
python=python3    # Python interpreter.

help_message=$(cat << EOF
Usage: $0 [options]
Synthesize the mini_emo corpus into ${datadir}/{train,dev,test,test_sed}/.

Options (default in brackets):
  --seed N            master random seed [${seed}]
  --nj N              parallel synthesis processes [${nj}]
  --num_train N       training utterances [${num_train}]
  --num_dev N         validation utterances [${num_dev}]
  --num_test N        test utterances [${num_test}]
  --num_test_sed N    emotion diarization utterances [${num_test_sed}]
  --multi_sentence_every N  every N-th train/dev utterance joins 2-3 sentences, neutral
                      around emotional like test_sed (0: none) [${multi_sentence_every}]
  --noise_prob P      probability of background noise [${noise_prob}]
  --snr_low DB        lowest noise SNR [${snr_low}]
  --snr_high DB       highest noise SNR [${snr_high}]
  --backend NAME      auto, ctypes or program [${backend}]
  --datadir DIR       data directories [${datadir}]
  --wavdir DIR        WAV files [${wavdir}]
  --force true|false  regenerate finished sets [${force}]
  --oracle_intervals true|false  also write ${datadir}/{train,dev}_oracle: train and dev with the
                      synthesizer's speech intervals as emo_segments (an oracle) [${oracle_intervals}]
  --python PY         python interpreter [${python}]
EOF
)

if [ ! -f utils/parse_options.sh ]; then
  log "Error: run $0 from the recipe folder (utils/parse_options.sh not found in $(pwd))"
  exit 1
fi
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  log "Error: unexpected arguments: $*"
  echo "${help_message}" >&2
  exit 2
fi
for flag in force oracle_intervals; do
  if [ "${!flag}" != true ] && [ "${!flag}" != false ]; then
    log "Error: --${flag} must be true or false, got '${!flag}'"
    exit 2
  fi
done

# shellcheck disable=SC1091
[ -f ./path.sh ] && . ./path.sh

opts=(
  --out-dir "${datadir}"
  --wav-dir "${wavdir}"
  --seed "${seed}"
  --nj "${nj}"
  --num-train "${num_train}"
  --num-dev "${num_dev}"
  --num-test "${num_test}"
  --num-test-sed "${num_test_sed}"
  --multi-sentence-every "${multi_sentence_every}"
  --noise-prob "${noise_prob}"
  --snr-range "${snr_low}" "${snr_high}"
  --backend "${backend}"
)
if [ "${force}" = true ]; then
  opts+=(--force)
fi

log "Synthesizing mini_emo (seed=${seed}, nj=${nj}, train/dev/test/test_sed=${num_train}/${num_dev}/${num_test}/${num_test_sed}) into ${datadir}/, audio in ${wavdir}/"
log "${python} -m ent.synth.mini_emo ${opts[*]}"
${python} -m ent.synth.mini_emo "${opts[@]}"

for set in train dev test test_sed; do
  log "${datadir}/${set}: $(wc -l < "${datadir}/${set}/wav.scp") utterances"
done

if [ "${oracle_intervals}" = true ]; then
  # The same utterances with the synthesizer's intervals as emo_segments, so
  # that training takes the supervised interval loss everywhere: an upper
  # bound of what utterance labels give, never the default.
  for set in train dev; do
    src="${datadir}/${set}"; dst="${datadir}/${set}_oracle"
    rm -rf "${dst}.tmp"; mkdir -p "${dst}.tmp"
    for f in wav.scp text utt2spk spk2utt utt2emo utt2dur; do cp "${src}/${f}" "${dst}.tmp/${f}"; done
    cp "${src}/oracle_emo_segments" "${dst}.tmp/emo_segments"
    rm -rf "${dst}"; mv "${dst}.tmp" "${dst}"
    log "${dst}: ${set} with the oracle intervals (emo_segments = ${src}/oracle_emo_segments)"
  done
fi
log "Successfully finished. [elapsed=${SECONDS}s]"
