#!/bin/bash
# A stand-in for Proxmox's `pct` (pve-container 6.1.x) over the lab's fixture containers:
# `<root>/<vmid>/{name,status,rootfs/…}`. It implements `list`, `status <vmid>` and
# `exec <vmid> [--keep-env <bool>] -- <argv…>` with Getopt::Long-style option errors, PVE's vmid
# checks and messages, and inside a "container" the programs `cat`, `sleep`, `true`, `stat -c` and
# `docker` with `exec`, `logs`, `ps` and `container inspect` over PocketID containers (see ct_docker;
# anything else gives lxc-attach's exec failure). Docker fixtures:
# `<root>/<vmid>/docker/<name>/pocketid_url` (a container answered by the PocketID emulator's lab
# routes), `…/<name>/compose_service` (its `com.docker.compose.service` label), `…/<name>/data_source`
# and `…/<name>/data_owner` (the CT path mounted at /app/data and the uid:gid that owns it, which
# `stat` reports since the tests cannot chown; the CLI fails as another non-root user, as PocketID
# cannot write its database then), `<root>/<vmid>/docker/daemon-down` (the daemon is not
# running) and `<root>/<vmid>/no-docker` (no docker binary in the CT). Exit codes of Perl `die`s are assumptions: 2 for a
# missing config, 255 for the others (contract ssh-pct-dotenv §1.2, §3.2).
# A fixture file `<root>/<vmid>/stderr` is written to stderr before each program runs inside that
# container (hostile-output tests: the container controls both streams).
# `sh -c SCRIPT ARG0 [ARG1]` runs only the deploy's three scripts (scripts/deploy-service.sh): write
# the .env atomically (unless it records a newer Vault version), `docker compose up -d
# [--force-recreate]` (logged to `<root>/<vmid>/compose.log`), and Grafana's
# `reset-admin-password --password-from-stdin` (its SHA-256 into Grafana's database stand-in,
# /var/lib/grafana/admin-password.sha256, and the version applied into .grafana-admin-applied);
# any other script fails as sh would not.
set -u
ROOT=${PCT_FIXTURE_ROOT:-@ROOT@}
NODE=${PCT_NODE:-lab}

usage_exec() { echo "pct exec <vmid> [<extra-args>] [OPTIONS]" >&2; }

die_usage() { # $1 = message lines, $2 = usage function
  printf '%s\n' "$1" >&2
  "$2"
  exit 255
}

check_vmid() { # $1 vmid, $2 usage function
  local v=$1
  if ! [[ $v =~ ^[+-]?[0-9]+$ ]]; then
    die_usage "400 Parameter verification failed.
vmid: type check ('integer') failed - got '$v'" "$2"
  fi
  if [[ $v == -* ]] || ((${#v} < 10 && 10#${v#+} < 100)); then
    die_usage "400 Parameter verification failed.
vmid: value must have a minimum value of 100" "$2"
  fi
  if ! [[ $v =~ ^[1-9][0-9]{2,8}$ ]]; then
    die_usage "400 Parameter verification failed.
vmid: value does not look like a valid VM ID" "$2"
  fi
}

load_config() {
  if [[ ! -d $ROOT/$1 ]]; then
    echo "Configuration file 'nodes/$NODE/lxc/$1.conf' does not exist" >&2
    exit 2
  fi
}

ct_status() { local s; s=$(cat "$ROOT/$1/status" 2>/dev/null); [[ $s == running ]] && echo running || echo stopped; }

# Maps a path inside the container to the host path under its rootfs (`..` cannot leave it).
ct_path() { # $1 vmid, $2 path (absolute or relative to /)
  local p
  p=$(realpath -m -s -- "/$2")
  printf '%s' "$ROOT/$1/rootfs$p"
}

ct_cat() { # $1 vmid, rest: cat's argv
  local vmid=$1; shift
  local rc=0 endopts=0 f hp mode
  local files=()
  for f in "$@"; do
    if ((endopts == 0)) && [[ $f == -- ]]; then endopts=1; continue; fi
    if ((endopts == 0)) && [[ $f == -?* ]]; then
      echo "cat: invalid option -- '${f:1:1}'" >&2
      echo "Try 'cat --help' for more information." >&2
      return 1
    fi
    files+=("$f")
  done
  for f in "${files[@]}"; do
    hp=$(ct_path "$vmid" "$f")
    if [[ ! -e $hp ]]; then
      echo "cat: $f: No such file or directory" >&2; rc=1; continue
    fi
    if [[ -d $hp ]]; then
      echo "cat: $f: Is a directory" >&2; rc=1; continue
    fi
    # The tests run as root, which reads anything: check the mode bits as an unprivileged
    # service user would meet them.
    mode=$(stat -c '%a' -- "$hp")
    if (( (8#$mode & 8#444) == 0 )); then
      echo "cat: $f: Permission denied" >&2; rc=1; continue
    fi
    command cat -- "$hp" || rc=1
  done
  return $rc
}

# `stat -c FORMAT -- PATH…` inside a CT. The owner (`%u:%g`) of a Docker fixture's data_source is its
# data_owner; anything else is the real file's.
ct_stat() { # $1 vmid, rest: stat's argv
  local vmid=$1; shift
  if [[ ${1:-} != -c || $# -lt 3 ]]; then
    echo "pct stand-in: stat runs only as stat -c FORMAT [--] PATH..." >&2; return 1
  fi
  local fmt=$2 rc=0 f hp d
  shift 2
  [[ ${1:-} == -- ]] && shift
  for f in "$@"; do
    hp=$(ct_path "$vmid" "$f")
    if [[ ! -e $hp ]]; then
      echo "stat: cannot statx '$f': No such file or directory" >&2; rc=1; continue
    fi
    for d in "$ROOT/$vmid"/docker/*/; do
      if [[ $fmt == '%u:%g' && -f $d/data_owner && $(command cat -- "$d/data_source" 2>/dev/null) == "$f" ]]; then
        command cat -- "$d/data_owner"; echo; continue 2
      fi
    done
    command stat -c "$fmt" -- "$hp" || rc=1
  done
  return $rc
}

# The deploy's scripts, recognised by their text; $1 = vmid, $2 = script, $3 = its $0, $4 = its $1.
# shellcheck disable=SC2016 # the scripts are compared as text, never expanded here
ct_sh() {
  local vmid=$1 script=$2 arg0=${3:-} arg1=${4:-} hp
  case $script in
    *'cat > "$0.new" && mv -- "$0.new" "$0"')
      # The .env write (guarded by the version it records, or not): the container's own sh over
      # the file's path in the fixture's rootfs.
      hp=$(ct_path "$vmid" "$arg0")
      if [[ ! -d ${hp%/*} ]]; then
        echo "sh: 1: cannot create $arg0.new: Directory nonexistent" >&2; return 2
      fi
      sh -c "$script" "$hp" "$arg1" ;;
    'cd "$0" && docker compose up -d'|'cd "$0" && docker compose up -d --force-recreate')
      hp=$(ct_path "$vmid" "$arg0")
      if [[ ! -d $hp ]]; then echo "sh: 1: cd: can't cd to $arg0" >&2; return 2; fi
      printf '%s %s\n' "$arg0" "${script#*docker compose }" >> "$ROOT/$vmid/compose.log" ;;
    'cd "$0" && '*'docker compose exec -T grafana grafana cli admin reset-admin-password --password-from-stdin'*)
      # Grafana's reset; the deploy's record of the version applied (.grafana-admin-applied in
      # the service's directory) is honoured and written as the script does.
      local pw rec recorded
      hp=$(ct_path "$vmid" "$arg0")
      if [[ ! -d $hp ]]; then echo "sh: 1: cd: can't cd to $arg0" >&2; return 2; fi
      rec=$hp/.grafana-admin-applied
      recorded=$(sed -n 's/^GRAFANA_ADMIN_APPLIED=version-\([0-9][0-9]*\)$/\1/p' "$rec" 2>/dev/null | head -n 1)
      if [[ $script == *'.grafana-admin-applied'* && -n $recorded && -n $arg1 ]] && ((recorded > arg1)); then
        echo "$recorded"; return 3
      fi
      pw=$(command cat)
      mkdir -p "$(ct_path "$vmid" /var/lib/grafana)"
      printf '%s' "$pw" | sha256sum | cut -d' ' -f1 | tr -d '\n' > "$(ct_path "$vmid" /var/lib/grafana/admin-password.sha256)"
      if [[ $script == *'.grafana-admin-applied'* ]]; then
        (umask 077 && printf 'GRAFANA_ADMIN_APPLIED=version-%s\n' "$arg1" > "$rec")
      else
        echo "Admin password changed successfully ✔"
      fi ;;
    *)
      echo "pct stand-in: sh -c runs only the deploy's scripts (scripts/deploy-service.sh)" >&2
      return 2 ;;
  esac
}

# One request to the PocketID emulator behind a container fixture, over bash's /dev/tcp: sets
# http_status and http_body. $1 container dir, $2 method, $3 path (query encoded), $4 body.
lab_http() {
  local dir=$1 method=$2 path=$3 data=${4:-} url hostport response
  url=$(command cat -- "$dir/pocketid_url")
  hostport=${url#http://}
  exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || return 1
  LC_ALL=C printf '%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$method" "$path" "$hostport" "$(LC_ALL=C; printf '%s' "$data" | wc -c)" "$data" >&3
  # The `x` keeps the head's closing CRLFs from $(…)'s newline stripping (an empty body).
  response=$(command cat <&3; printf x)
  response=${response%x}
  exec 3<&-
  http_status=$(printf '%s' "$response" | head -n 1 | cut -d' ' -f2)
  http_body=${response#*$'\r\n\r\n'}
  http_body=${http_body%$'\n'}
}

# Percent-encodes a query value.
urlencode() {
  local LC_ALL=C s=$1 i c out=""
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# The fixture dir of container $2 in CT $1, or Docker's error.
docker_container() {
  local dir=$ROOT/$1/docker/$2
  if [[ -z $2 || ! -f $dir/pocketid_url ]]; then
    echo "Error response from daemon: No such container: $2" >&2; return 1
  fi
  printf '%s' "$dir"
}

# `docker exec|logs|ps` inside a CT. A fixture `<root>/<vmid>/docker/<name>/pocketid_url` stands
# for a PocketID container, answered by the PocketID emulator's lab routes: its CLI
# `/app/pocket-id one-time-access-token <user>` (with a Go-default log line on stderr first, as the
# real CLI may print) and its log.
ct_docker() { # $1 vmid, rest: docker's argv
  local vmid=$1; shift
  if [[ -f $ROOT/$vmid/docker/daemon-down ]]; then
    echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
    return 1
  fi
  case ${1:-} in
    exec) shift; docker_exec "$vmid" "$@" ;;
    logs) shift; docker_logs "$vmid" "$@" ;;
    ps) shift; docker_ps "$vmid" "$@" ;;
    container) shift; docker_container_cmd "$vmid" "$@" ;;
    *) echo "docker: '${1:-}' is not a docker command." >&2; return 1 ;;
  esac
}

# `docker container inspect --format <the /app/data mount source> <name>`: the one format the
# login-code fallback sends; prints the fixture's data_source (an empty line without a mount).
docker_container_cmd() { # $1 vmid, rest: `docker container`'s argv
  local vmid=$1; shift
  local want='{{range .Mounts}}{{if eq .Destination "/app/data"}}{{.Source}}{{end}}{{end}}' dir
  if [[ ${1:-} != inspect || ${2:-} != --format || ${3:-} != "$want" || $# -ne 4 ]]; then
    echo "pct stand-in: docker container runs only inspect --format '$want' <name>" >&2; return 125
  fi
  if [[ ! -f $ROOT/$vmid/docker/$4/pocketid_url ]]; then
    # `docker container inspect` words it so; `docker inspect` says "No such object".
    echo "Error: No such container: $4" >&2; return 1
  fi
  dir=$ROOT/$vmid/docker/$4
  command cat -- "$dir/data_source" 2>/dev/null
  echo
}

# `docker exec [-u <user>] [-i] [-t] <name> /app/pocket-id one-time-access-token <user>`.
docker_exec() { # $1 vmid, rest: exec's argv
  local vmid=$1; shift
  local user=""
  while (($#)); do
    case $1 in
      -u|--user) user=${2:-}; shift 2 ;;
      -u?*) user=${1#-u}; shift ;;
      --user=*) user=${1#--user=}; shift ;;
      -i|-t|-it|--interactive|--tty) shift ;;
      -*) echo "unknown flag: $1" >&2; return 125 ;;
      *) break ;;
    esac
  done
  local name=${1:-} dir
  (($#)) && shift
  dir=$(docker_container "$vmid" "$name") || return 1
  if [[ ${1:-} != /app/pocket-id ]]; then
    echo "OCI runtime exec failed: exec failed: unable to start container process: exec: \"${1:-}\": stat ${1:-}: no such file or directory: unknown" >&2
    return 126
  fi
  shift
  if [[ ${1:-} != one-time-access-token ]] || (($# != 2)); then
    echo "Error: accepts 1 arg(s), received $(($# - 1))" >&2; return 1
  fi
  printf '%s INFO Connected to database provider=sqlite\n' "$(date '+%Y/%m/%d %H:%M:%S')" >&2
  # Another non-root user than the owner of /app/data cannot write PocketID's SQLite database
  # (the text is SQLite's SQLITE_READONLY; PocketID's exact wording is not pinned).
  local owner
  owner=$(command cat -- "$dir/data_owner" 2>/dev/null)
  if [[ -n $user && -n $owner && $user != "$owner" && $user != 0 && $user != 0:0 && $user != root ]]; then
    echo "Error: failed to create one-time access token: attempt to write a readonly database (8)" >&2
    return 1
  fi
  lab_http "$dir" POST /api/__lab/cli/one-time-access-token "$2" || { echo "Error: failed to connect to database" >&2; return 1; }
  if [[ $http_status == 200 ]]; then
    printf '%s\n' "$http_body"; return 0
  fi
  printf '%s\n' "$http_body" >&2
  return 1
}

# `docker logs [-t|--timestamps] [--since V] [--until V] [-n N|--tail N] <name>`: the emulator
# parses Docker's time formats against its clock and keeps Docker's error texts.
docker_logs() { # $1 vmid, rest: logs' argv
  local vmid=$1; shift
  local query="" name="" dir
  while (($#)); do
    case $1 in
      -t|--timestamps) query+="&timestamps=1" ;;
      --since|--until|-n|--tail)
        if (($# < 2)); then echo "flag needs an argument: $1" >&2; return 1; fi
        local key=${1#--}; [[ $key == -n ]] && key="tail"
        query+="&$key=$(urlencode "$2")"; shift ;;
      --since=*|--until=*|--tail=*) local kv=${1#--}; query+="&${kv%%=*}=$(urlencode "${kv#*=}")" ;;
      -n?*) query+="&tail=$(urlencode "${1#-n}")" ;;
      -*) echo "unknown flag: $1" >&2; return 125 ;;
      *)
        if [[ -n $name ]]; then echo "\"docker logs\" requires exactly 1 argument." >&2; return 1; fi
        name=$1 ;;
    esac
    shift
  done
  if [[ -z $name ]]; then echo "\"docker logs\" requires exactly 1 argument." >&2; return 1; fi
  dir=$(docker_container "$vmid" "$name") || return 1
  lab_http "$dir" GET "/api/__lab/docker-logs?${query#&}" || {
    echo "Error response from daemon: container $name is not running" >&2; return 1; }
  if [[ $http_status != 200 ]]; then
    printf '%s\n' "$http_body" >&2; return 1
  fi
  [[ -n $http_body ]] && printf '%s\n' "$http_body"
  return 0
}

# `docker ps [-a] [--filter label=com.docker.compose.service=<svc>] --format '{{.Names}}'`.
docker_ps() { # $1 vmid, rest: ps' argv
  local vmid=$1; shift
  local want="" d
  while (($#)); do
    case $1 in
      -a|--all|-q) ;;
      --filter|-f) want=${2:-}; shift ;;
      --filter=*) want=${1#--filter=} ;;
      --format) [[ ${2:-} == '{{.Names}}' ]] || { echo "pct stand-in: docker ps prints names only (--format '{{.Names}}')" >&2; return 125; }; shift ;;
      *) echo "unknown flag: $1" >&2; return 125 ;;
    esac
    shift
  done
  if [[ -n $want && $want != label=com.docker.compose.service=* ]]; then
    echo "pct stand-in: docker ps filters on label=com.docker.compose.service=<service> only" >&2; return 125
  fi
  for d in "$ROOT/$vmid"/docker/*/; do
    d=${d%/}
    [[ -f $d/pocketid_url ]] || continue
    if [[ -n $want && $(command cat -- "$d/compose_service" 2>/dev/null) != "${want#label=com.docker.compose.service=}" ]]; then
      continue
    fi
    printf '%s\n' "${d##*/}"
  done
  return 0
}

cmd_exec() {
  local vmid="" argv=() opts_done=0 a
  while (($#)); do
    a=$1; shift
    if ((opts_done)); then argv+=("$a"); continue; fi
    case $a in
      --) opts_done=1 ;;
      --keep-env|-keep-env) shift ;;
      --keep-env=*|-keep-env=*) ;;
      -*)
        local name=${a#-}; name=${name#-}; name=${name%%=*}
        printf 'Unknown option: %s\n400 unable to parse option\n' "$name" >&2
        usage_exec; exit 255 ;;
      *) if [[ -z $vmid ]]; then vmid=$a; else argv+=("$a"); fi ;;
    esac
  done
  if [[ -z $vmid ]]; then
    printf '400 not enough arguments\n' >&2; usage_exec; exit 255
  fi
  check_vmid "$vmid" usage_exec
  load_config "$vmid"
  if [[ $(ct_status "$vmid") != running ]]; then
    echo "container '$vmid' not running!" >&2
    exit 255
  fi
  if ((${#argv[@]} == 0)); then
    printf 'missing command at /usr/share/perl5/PVE/CLI/pct.pm line 246.\n' >&2
    exit 255
  fi
  [[ -f $ROOT/$vmid/stderr ]] && command cat -- "$ROOT/$vmid/stderr" >&2
  local prog=${argv[0]}
  if [[ $prog == docker && -f $ROOT/$vmid/no-docker ]]; then
    prog=docker-not-installed
  fi
  case $prog in
    cat) ct_cat "$vmid" "${argv[@]:1}"; exit $? ;;
    docker) ct_docker "$vmid" "${argv[@]:1}"; exit $? ;;
    stat) ct_stat "$vmid" "${argv[@]:1}"; exit $? ;;
    sleep) command sleep "${argv[1]:-0}"; exit $? ;;
    true) exit 0 ;;
    sh)
      if [[ ${argv[1]:-} != -c ]]; then echo "sh: only -c is supported here" >&2; exit 2; fi
      ct_sh "$vmid" "${argv[2]:-}" "${argv[3]:-}" "${argv[4]:-}"; exit $? ;;
    *)
      echo "lxc-attach: $vmid: ../src/lxc/attach.c: lxc_attach_run_command: 1841 Failed to exec \"${argv[0]}\"" >&2
      exit 127 ;;
  esac
}

cmd_list() {
  local d vmid name lock first=1
  local ids=()
  for d in "$ROOT"/*/; do
    d=${d%/}; d=${d##*/}
    [[ $d =~ ^[0-9]+$ ]] && ids+=("$d")
  done
  ((${#ids[@]})) || return 0
  for d in $(printf '%s\n' "${ids[@]}" | sort -n); do
    vmid=$d; name=$(cat "$ROOT/$d/name" 2>/dev/null); lock=""
    if ((first)); then
      printf '%-10s %-10s %-12s %-20s\n' VMID Status Lock Name; first=0
    fi
    printf '%-10s %-10s %-12s %-20s\n' "$vmid" "$(ct_status "$vmid")" "$lock" "$name"
  done
}

cmd_status() {
  local vmid=${1:-}
  if [[ -z $vmid ]]; then printf '400 not enough arguments\npct status <vmid> [OPTIONS]\n' >&2; exit 255; fi
  check_vmid "$vmid" usage_status_line
  load_config "$vmid"
  echo "status: $(ct_status "$vmid")"
}
usage_status_line() { echo "pct status <vmid> [OPTIONS]" >&2; }

sub=${1:-}
(($#)) && shift
case $sub in
  exec) cmd_exec "$@" ;;
  list) cmd_list ;;
  status) cmd_status "$@" ;;
  "") echo "ERROR: no command specified" >&2; exit 255 ;;
  *) echo "ERROR: unknown command 'pct $sub'" >&2; exit 255 ;;
esac
