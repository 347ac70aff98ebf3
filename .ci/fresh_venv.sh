#!/usr/bin/env bash
# A new user's first hour, as the README gives it: its two set-up commands, exactly as
# written, in order, in ONE fresh virtualenv with a fresh home (so a fresh Numba cache);
# then `recli --help` and the quick start from a folder outside the repository.
# Command 2's test run is narrowed with PYTEST_ADDOPTS (the full suite runs in .ci/run).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$(python3 -m pip cache dir 2>/dev/null || echo "$HOME/.cache/pip")}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_QUIET=1
unset NUMBA_CACHE_DIR
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
export HOME="$work/home" XDG_CACHE_HOME="$work/home/.cache"
mkdir -p "$HOME"

# the README's first bash block: the lines after "# 1." and "# 2."
block=$(awk '/^```bash/{n++} n==1' "$repo/README.md")
cmd1=$(printf '%s\n' "$block" | awk '/^# 1\./{getline; print; exit}')
cmd2=$(printf '%s\n' "$block" | awk '/^# 2\./{getline; print; exit}')
[ -n "$cmd1" ] && [ -n "$cmd2" ] || { echo "fresh venv: README set-up commands not found" >&2; exit 1; }
cd "$repo"
echo "== README command 1: $cmd1"
bash -euo pipefail -c "$cmd1" >/dev/null
echo "== README command 2: $cmd2"
PYTEST_ADDOPTS="-x -q -p no:cacheprovider tests/test_foundation.py" bash -euo pipefail -c "$cmd2"

site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if find "$site" -path '*recli*' \( -name '*.nbi' -o -name '*.nbc' \) | grep -q .; then
  echo "fresh venv: Numba wrote its cache into site-packages" >&2; exit 1
fi
outside="$work/elsewhere"; mkdir -p "$outside"; cd "$outside"
recli --help >/dev/null
Q="$work/quickstart"
recli prep "$repo/sample_data/interactions.csv" --split leave-random --test-size 0.2 --seed 42 --out "$Q"
recli train "$Q/train.csv" --model als --seed 42 -o "$Q/als.model"
recli recommend "$Q/als.model" --users "$Q/test.csv" -k 10 | recli eval - --test "$Q/test.csv" --train "$Q/train.csv" -k 5,10
echo "fresh venv: README set-up and quick start work from outside the repository"
