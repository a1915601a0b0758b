# Helpers sourced by the reproduction scripts in this folder (not run on its own).
#
# Resolves the `wmlab` executable (WMLAB, else `wmlab` on PATH, else the repository's .venv), and offers small,
# side-effect-free checks that let the scripts skip finished steps: every wmlab step either resumes by itself or is
# skipped here when its result file already exists.

REPRO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$REPRO_DIR/../.." && pwd)

if [[ -z "${WMLAB:-}" ]]; then
    if command -v wmlab >/dev/null 2>&1; then
        WMLAB=$(command -v wmlab)
    elif [[ -x "$REPO_DIR/.venv/bin/wmlab" ]]; then
        WMLAB="$REPO_DIR/.venv/bin/wmlab"
    else
        echo "wmlab not found: install it (see README.md) or set WMLAB=/path/to/wmlab" >&2
        exit 1
    fi
fi
# torchrun of the same environment as wmlab (only used when NPROC > 1)
TORCHRUN=${TORCHRUN:-$(dirname "$WMLAB")/torchrun}

log() { printf '[%(%Y-%m-%d %H:%M:%S)T] %s\n' -1 "$*"; }

# run a wmlab command, echoing it first
wm() {
    log "wmlab $*"
    "$WMLAB" "$@"
}

# newest checkpoint step of a run directory (ckpt-<12 digits>.pt), or -1 when there is none
latest_step() {
    local dir="$1/checkpoints" best=-1 f n
    [[ -d "$dir" ]] || { echo -1; return 0; }
    for f in "$dir"/ckpt-*.pt; do
        [[ -e "$f" ]] || continue
        n=${f##*/ckpt-}
        n=${n%.pt}
        n=$((10#$n))
        ((n > best)) && best=$n
    done
    echo "$best"
}

# true when a JSON file written by json.dumps contains `"complete": true` (episode stores, feature caches)
is_complete() { [[ -f "$1" ]] && grep -q '"complete": true' "$1"; }

# true when job number $1 belongs to this shard (SHARD=i/N runs jobs j with j % N == i)
in_shard() {
    local index=${SHARD%/*} count=${SHARD#*/}
    (($1 % count == index))
}

