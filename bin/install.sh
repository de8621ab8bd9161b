#!/usr/bin/env bash
# Installs cost-optimizer as a systemd service. Run as root from a checkout; running it again is safe.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo bin/install.sh

Builds the release binary (swift build -c release) and installs
    $PREFIX/bin/cost-optimizer                        mode 0755 (PREFIX defaults to /usr/local)
    /etc/systemd/system/cost-optimizer.service        mode 0644 (always replaced)
    /etc/cost-optimizer/cost-optimizer.env            mode 0600, only when absent: an existing
                                                      file is never overwritten
then runs `systemctl daemon-reload` when systemd is running. Nothing is enabled or started.

Environment:
    PREFIX                  install prefix of the binary (default /usr/local)
    DESTDIR                 stage everything under this directory (packaging, tests); no root
                            needed and systemctl is not called
    COST_OPTIMIZER_BINARY   install this prebuilt binary instead of building
USAGE
}

case "${1:-}" in
    -h | --help)
        usage
        exit 0
        ;;
    "") ;;
    *)
        usage >&2
        exit 64
        ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
destdir=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
prefix=${prefix%/}

if [[ -z "$destdir" && $EUID -ne 0 ]]; then
    echo "install.sh: run as root (sudo bin/install.sh), or set DESTDIR to stage the files" >&2
    exit 77
fi

binary=${COST_OPTIMIZER_BINARY:-}
if [[ -z "$binary" ]]; then
    if ! command -v swift >/dev/null 2>&1; then
        echo "install.sh: swift is not on PATH; build first (swift build -c release) and run" >&2
        echo "    sudo COST_OPTIMIZER_BINARY=$repo/.build/release/cost-optimizer bin/install.sh" >&2
        exit 69
    fi
    echo "install.sh: swift build -c release"
    (cd "$repo" && swift build -c release)
    binary="$repo/.build/release/cost-optimizer"
fi
if [[ ! -f "$binary" || ! -x "$binary" ]]; then
    echo "install.sh: $binary is not an executable file" >&2
    exit 66
fi

bin_dir="$destdir$prefix/bin"
unit_dir="$destdir/etc/systemd/system"
conf_dir="$destdir/etc/cost-optimizer"
env_file="$conf_dir/cost-optimizer.env"

# Create missing directories only: an existing one keeps the owner and mode the admin gave it.
for dir in "$bin_dir" "$unit_dir" "$conf_dir"; do
    [[ -d "$dir" ]] || install -d -m 0755 "$dir"
done
install -m 0755 "$binary" "$bin_dir/cost-optimizer"
echo "installed $bin_dir/cost-optimizer"

# The unit names /usr/local/bin/cost-optimizer; follow PREFIX.
unit_tmp=$(mktemp)
trap 'rm -f "$unit_tmp"' EXIT
sed "s#^ExecStart=/usr/local/bin/cost-optimizer #ExecStart=$prefix/bin/cost-optimizer #" \
    "$repo/systemd/cost-optimizer.service" >"$unit_tmp"
install -m 0644 "$unit_tmp" "$unit_dir/cost-optimizer.service"
echo "installed $unit_dir/cost-optimizer.service"

# The settings hold API keys: root only, and never replace the user's file.
if [[ -e "$env_file" ]]; then
    echo "kept      $env_file (exists; compare with $repo/etc/cost-optimizer.env.example for new settings)"
    mode=$(stat -c %a "$env_file")
    if [[ "$mode" != 600 && "$mode" != 400 ]]; then
        echo "warning:  $env_file is mode $mode; it holds API keys: chmod 600 $env_file" >&2
    fi
else
    install -m 0600 "$repo/etc/cost-optimizer.env.example" "$env_file"
    echo "installed $env_file (DRY_RUN=true: set VAST_API_KEY, then observe a day before DRY_RUN=false)"
fi

if [[ -z "$destdir" && -d /run/systemd/system ]]; then
    systemctl daemon-reload
    echo "ran       systemctl daemon-reload"
else
    echo "skipped   systemctl daemon-reload (systemd is not running here, or DESTDIR is set)"
fi

cat <<NEXT

Next:
    edit $env_file        (VAST_API_KEY; ssh key: see the comments in the unit file)
    systemctl enable --now cost-optimizer
    journalctl -u cost-optimizer -f
After an upgrade of a running service: systemctl restart cost-optimizer
NEXT
