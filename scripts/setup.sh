#!/usr/bin/env bash
# Creates .venv (if missing) and installs reservoir-rl into it with the given extras (e.g. "test,ray").
#
# torch is installed first, at the exact release the project is tested with, and by default its CPU
# build (a few hundred MB, instead of the multi-GB CUDA build a plain `pip install torch` fetches on
# Linux): from PyTorch's CPU index, or, where that index cannot be reached (an offline machine with a
# local package index, as in CI), from the indexes pip is configured with. Environment variables:
#
#   RESERVOIR_RL_TORCH_INDEX_URL  index to take torch from (default https://download.pytorch.org/whl/cpu);
#                                 e.g. https://download.pytorch.org/whl/cu126 for a CUDA build, or
#                                 "pip" for pip's own configured indexes only
#   RESERVOIR_RL_TORCH            the torch requirement (default torch==2.13.0)
#
# It prints which torch it installed (version, CPU or CUDA build, where from). Everything else is then
# installed with torch pinned to that exact build, so no dependency range can pull another torch.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
torch_requirement="${RESERVOIR_RL_TORCH:-torch==2.13.0}"
torch_index="${RESERVOIR_RL_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
python3 -m venv .venv
pip=(.venv/bin/python -m pip)
"${pip[@]}" install --quiet --upgrade pip

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
report="$work/torch-report.json"  # pip's record of what it installed, and from where
if [ "$torch_index" != "pip" ] && [ -n "$torch_index" ]; then
    # that index replaces pip's main index for torch; pip's extra indexes and find-links stay beside it
    if ! "${pip[@]}" install --quiet --timeout 20 --retries 1 --report "$report" --index-url "$torch_index" \
            "$torch_requirement"; then
        echo "setup: $torch_requirement is not available from $torch_index here; trying pip's configured indexes" >&2
        "${pip[@]}" install --quiet --report "$report" "$torch_requirement"
    fi
else
    "${pip[@]}" install --quiet --report "$report" "$torch_requirement"
fi
.venv/bin/python -W ignore - "$report" <<'PY'  # (-W: torch warns that numpy is not installed yet)
import json, sys
import torch
build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
try:
    installed = json.load(open(sys.argv[1], encoding="utf-8")).get("install", [])
except (OSError, ValueError):
    installed = []
urls = [item.get("download_info", {}).get("url", "?") for item in installed
        if item.get("metadata", {}).get("name", "").lower() == "torch"]
where = f"from {urls[0]}" if urls else "(already in .venv)"
print(f"setup: torch {torch.__version__}, {build} build, {where}")
PY
torch_version="$(.venv/bin/python -W ignore -c 'import torch; print(torch.__version__)')"

constraints="$work/constraints.txt"
echo "torch==$torch_version" > "$constraints"  # the build just installed, whatever another package asks for
if [ -n "$extras" ]; then
    "${pip[@]}" install --quiet --constraint "$constraints" -e ".[${extras}]"
else
    "${pip[@]}" install --quiet --constraint "$constraints" -e .
fi
