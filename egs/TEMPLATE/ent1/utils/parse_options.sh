#!/usr/bin/env bash
# Parse "--name value" and "--name=value" options into shell variables.
#
# Source this file after declaring every option as a shell variable with its
# default value. Dashes in option names become underscores (--train-set and
# --train_set both set ${train_set}). Parsing stops at the first argument that
# does not start with "--"; the remaining arguments stay in "$@".
#
#   --help / -h     print ${help_message} and exit 0
#   --config FILE   source FILE (lines "name=value") before later options
#
# An unknown option, or an option without a value, is an error naming it.

while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then
        printf '%s\n' "${help_message}"
      else
        echo "$0: no help message available" >&2
      fi
      exit 0 ;;
    --*=*)
      _po_name="${1%%=*}"; _po_value="${1#*=}"; shift ;;
    --*)
      _po_name="$1"
      if [ $# -lt 2 ]; then
        echo "$0: option ${_po_name} needs a value" >&2; exit 1
      fi
      _po_value="$2"; shift 2 ;;
    *) break ;;
  esac
  _po_var="${_po_name#--}"; _po_var="${_po_var//-/_}"
  if [ "${_po_var}" = config ]; then
    if [ ! -f "${_po_value}" ]; then
      echo "$0: config file '${_po_value}' not found" >&2; exit 1
    fi
    # shellcheck disable=SC1090
    . "${_po_value}"
    continue
  fi
  if ! [[ "${_po_var}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_var+set}" ]; then
    echo "$0: unknown option ${_po_name} (see --help)" >&2; exit 1
  fi
  printf -v "${_po_var}" '%s' "${_po_value}"
done
unset _po_name _po_value _po_var
true
