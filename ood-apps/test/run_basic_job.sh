#!/usr/bin/env bash
# Runs a staged batch-connect job in the order OOD's "basic" template runs it (ood_core,
# lib/ood_core/batch_connect/template.rb), for the tests: in the staged directory, set host to
# this machine, source before.sh, start script.sh in the background, source after.sh, write
# connection.yml, wait for script.sh. As there, connection.yml holds each conn_param and host,
# port and password, as `name: value` lines with the values unquoted and expanded by `echo -e`,
# under umask 077. Unlike there, the file is written under another name and renamed, so a test
# never reads half of it.
#
#   run_basic_job.sh STAGED_ROOT [CONN_PARAM...]
cd "$1" || exit 1
shift
declare -A seen=()
names=()
for name in "$@" host port password; do
  [[ -n ${seen[$name]-} ]] && continue
  seen[$name]=1
  names+=("$name")
done

export host port
host=$(hostname)

[[ -e before.sh ]] && source before.sh

./script.sh &
SCRIPT_PID=$!

[[ -e after.sh ]] && source after.sh

(
  umask 077
  for name in "${names[@]}"; do
    echo -e "${name}: ${!name-}"
  done > connection.yml.partial
  mv connection.yml.partial connection.yml
)

wait "$SCRIPT_PID"
