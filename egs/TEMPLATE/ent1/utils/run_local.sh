#!/usr/bin/env bash
# Run a command as one or more jobs on this machine, run.pl style.
#
#   utils/run_local.sh [options] [JOB=1:N | JOB=a,b,c] LOG CMD [ARG...]
#
# Without a JOB= range, CMD ARG... runs once, its output in LOG. With one, it
# runs once per value of the range (1 to N, or the comma-separated values),
# the string JOB in LOG and in every ARG replaced by the value (any name in
# capitals works: FOLD=1,3 replaces FOLD). The jobs run in parallel, at most
# --max_jobs_run at a time. Each LOG starts with the command and its start
# time and ends with its exit code. CMD is run as given, not through a shell
# (use `bash -c '...'` for pipes and redirections).
#
# The exit code is 0 when every job succeeded. When a job fails, the jobs
# still running are killed (with their children), the end of the failed job's
# log is shown, and the exit code is 1; jobs not yet started never start.
#
# Options:
#   --max_jobs_run N    jobs at a time (default: all at once)
#   --launcher CMD      run each job as `CMD [OPT...] <the job's command>`, e.g.
#                       srun: every job a Slurm job step (see cmd.sh)
#   --launcher_opt OPT  one option word of the launcher (repeatable), e.g.
#                       --launcher_opt --gres=gpu:1
set -uo pipefail

me=${0##*/}
usage() { sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2; }

max_jobs_run=0
launcher=()
launcher_opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --max_jobs_run|--max-jobs-run) [ $# -ge 2 ] || usage; max_jobs_run=$2; shift 2 ;;
    --launcher) [ $# -ge 2 ] || usage; launcher=("$2"); shift 2 ;;
    --launcher_opt|--launcher-opt) [ $# -ge 2 ] || usage; launcher_opts+=("$2"); shift 2 ;;
    --help|-h) usage ;;
    --*) echo "${me}: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if ! [[ "${max_jobs_run}" =~ ^[0-9]+$ ]]; then
  echo "${me}: --max_jobs_run must be a number, not '${max_jobs_run}'" >&2; exit 2
fi
[ "${#launcher[@]}" -gt 0 ] && launcher+=("${launcher_opts[@]}")

name=""
values=(1)
if [[ $# -gt 0 && "$1" =~ ^([A-Z][A-Z0-9_]*)=(.+)$ ]]; then
  name=${BASH_REMATCH[1]}
  range=${BASH_REMATCH[2]}
  shift
  if [[ "${range}" =~ ^([0-9]+):([0-9]+)$ ]]; then
    values=()
    for ((v = BASH_REMATCH[1]; v <= BASH_REMATCH[2]; v++)); do values+=("${v}"); done
  else
    IFS=, read -r -a values <<< "${range}"
    for v in "${values[@]}"; do
      [ -n "${v}" ] || { echo "${me}: empty value in ${name}=${range}" >&2; exit 2; }
    done
  fi
  if [ "${#values[@]}" -eq 0 ]; then
    echo "${me}: ${name}=${range} has no job" >&2; exit 2
  fi
fi
[ $# -ge 2 ] || usage
log_template=$1
shift
cmd_template=("$@")

# Job i: its value, log, pid (while running) and exit code file.
n=${#values[@]}
[ "${max_jobs_run}" -eq 0 ] || [ "${max_jobs_run}" -gt "${n}" ] && max_jobs_run=${n}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/run_local.XXXXXX")
logs=()
pids=()
running=()

subst() { if [ -n "${name}" ]; then printf '%s' "${1//${name}/$2}"; else printf '%s' "$1"; fi; }

kill_running() {
  local i
  for i in "${running[@]}"; do
    # Each job is a process group of its own (set -m): kill it with its children.
    kill -TERM -- "-${pids[$i]}" 2>/dev/null || kill -TERM "${pids[$i]}" 2>/dev/null
  done
  for i in "${running[@]}"; do
    wait "${pids[$i]}" 2>/dev/null
    echo "# Killed at $(date '+%Y-%m-%dT%H:%M:%S'): $1" >> "${logs[$i]}"
  done
  running=()
}
on_signal() {
  kill_running "${me} got a signal"
  rm -rf "${tmp}"
  exit 130
}
trap on_signal INT TERM HUP
trap 'rm -rf "${tmp}"' EXIT

start_job() {
  local i=$1 v=${values[$1]} log arg
  local cmd=()
  log=$(subst "${log_template}" "${v}")
  for arg in "${cmd_template[@]}"; do cmd+=("$(subst "${arg}" "${v}")"); done
  mkdir -p "$(dirname "${log}")"
  {
    echo "# $(printf '%q ' "${launcher[@]}" "${cmd[@]}")"
    echo "# Started at $(date '+%Y-%m-%dT%H:%M:%S')"
  } > "${log}"
  logs[i]=${log}
  set -m
  (
    start=${SECONDS}
    "${launcher[@]}" "${cmd[@]}" < /dev/null
    rc=$?
    echo "# Ended (code ${rc}) at $(date '+%Y-%m-%dT%H:%M:%S'), elapsed $((SECONDS - start)) s"
    echo "${rc}" > "${tmp}/${i}.rc"
  ) >> "${log}" 2>&1 &
  pids[i]=$!
  set +m
  running+=("${i}")
}

next=0
while :; do
  while [ "${#running[@]}" -lt "${max_jobs_run}" ] && [ "${next}" -lt "${n}" ]; do
    start_job "${next}"
    next=$((next + 1))
  done
  [ "${#running[@]}" -eq 0 ] && break
  still=()
  failed=""
  for i in "${running[@]}"; do
    if [ -f "${tmp}/${i}.rc" ]; then
      wait "${pids[$i]}" 2>/dev/null
      rc=$(cat "${tmp}/${i}.rc")
      [ "${rc}" -eq 0 ] || { failed=${i}; failed_rc=${rc}; }
    elif ! kill -0 "${pids[$i]}" 2>/dev/null; then
      wait "${pids[$i]}" 2>/dev/null
      if [ -f "${tmp}/${i}.rc" ]; then  # it ended between the two checks
        rc=$(cat "${tmp}/${i}.rc")
        [ "${rc}" -eq 0 ] || { failed=${i}; failed_rc=${rc}; }
      else
        failed=${i}; failed_rc="none: killed"  # ended without writing its exit code
      fi
    else
      still+=("${i}")
    fi
  done
  running=("${still[@]}")
  if [ -n "${failed}" ]; then
    n_killed=${#running[@]}
    kill_running "job ${values[$failed]} failed"
    label=""
    [ -n "${name}" ] && label=" ${name}=${values[$failed]} (one of ${n})"
    {
      echo "${me}: job${label} failed (exit code ${failed_rc}); ${n_killed} running job(s) killed," \
           "$((n - next)) not started. The end of ${logs[$failed]}:"
      tail -n 20 "${logs[$failed]}" | sed 's/^/  /'
    } >&2
    exit 1
  fi
  sleep 0.2
done
exit 0
