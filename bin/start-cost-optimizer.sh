#!/usr/bin/env bash
# Runs cost-optimizer by hand: builds the release binary when it is missing, loads an env file, passes arguments through.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bin/start-cost-optimizer.sh [ENV_FILE] [--] [cost-optimizer arguments...]

Builds .build/release/cost-optimizer with `swift build -c release` when it is missing (or when
COST_OPTIMIZER_REBUILD=1), exports the settings of the first env file found of
    ENV_FILE (the first argument, when it names an existing file)
    ./cost-optimizer.env
    /etc/cost-optimizer/cost-optimizer.env
then runs the binary with the remaining arguments. Values in the file override the shell's.
With no env file the environment is used as is.

The env file is read as systemd reads EnvironmentFile=, not run as shell: NAME=value lines,
blank lines and # comments; one pair of surrounding quotes is removed; nothing is expanded.

Examples:
    bin/start-cost-optimizer.sh ./my.env --run-once --dry-run
    bin/start-cost-optimizer.sh check-config
    bin/start-cost-optimizer.sh demo
    bin/start-cost-optimizer.sh /etc/cost-optimizer/cost-optimizer.env status --json
    bin/start-cost-optimizer.sh -- --help          (the daemon's own help)

cost-optimizer arguments: run (the default: loop until SIGTERM), --run-once, --dry-run,
status [--json], check-config, demo, --help, --version.
USAGE
}

# Exports NAME=value lines of an env file with `set -a`, reading values literally (no expansion, no commands), so a
# file means the same here as under systemd. A malformed line exits 78 naming the line number, never its text.
load_env_file() {
    local _file=$1 _line _name _value _number=0
    set -a
    while IFS= read -r _line || [[ -n "$_line" ]]; do
        _number=$((_number + 1))
        _line=${_line%$'\r'}
        [[ "$_line" =~ ^[[:space:]]*([#\;].*)?$ ]] && continue
        if [[ ! "$_line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
            echo "start-cost-optimizer: $_file:$_number: expected NAME=value" >&2
            exit 78
        fi
        _name=${BASH_REMATCH[1]}
        _value=${BASH_REMATCH[2]}
        _value=${_value%"${_value##*[![:space:]]}"}
        if [[ ${#_value} -ge 2 && ( "$_value" == \"*\" || "$_value" == \'*\' ) ]]; then
            _value=${_value:1:${#_value}-2}
        fi
        printf -v "$_name" '%s' "$_value"
    done <"$_file"
    set +a
}

case "${1:-}" in
    -h | --help)
        usage
        exit 0
        ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary="$repo/.build/release/cost-optimizer"

env_file=""
if [[ $# -gt 0 && "$1" != -* && -f "$1" ]]; then
    env_file=$1
    shift
elif [[ -f ./cost-optimizer.env ]]; then
    env_file=./cost-optimizer.env
elif [[ -f /etc/cost-optimizer/cost-optimizer.env ]]; then
    env_file=/etc/cost-optimizer/cost-optimizer.env
fi
if [[ "${1:-}" == "--" ]]; then
    shift
fi

if [[ ! -x "$binary" || "${COST_OPTIMIZER_REBUILD:-0}" == 1 ]]; then
    echo "start-cost-optimizer: building $binary (swift build -c release)" >&2
    (cd "$repo" && swift build -c release >&2)
fi

if [[ -n "$env_file" ]]; then
    if [[ ! -r "$env_file" ]]; then
        echo "start-cost-optimizer: cannot read $env_file (it is usually mode 0600, owner root: try sudo)" >&2
        exit 78
    fi
    echo "start-cost-optimizer: loading $env_file" >&2
    load_env_file "$env_file"
else
    echo "start-cost-optimizer: no env file found; using the current environment" >&2
fi

exec "$binary" "$@"
