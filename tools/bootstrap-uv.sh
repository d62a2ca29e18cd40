#!/usr/bin/env bash
# uv, pinned, for the Makefile: `bash tools/bootstrap-uv.sh DIR VERSION [PYTHON]` leaves DIR/VERSION/bin/uv.
#
# uv (https://pypi.org/project/uv/) fills the project's venvs. It is a wheel on PyPI like any other
# package, so it comes from there with the pip of the Python the project uses; nothing needs to be
# installed beforehand. First choice: `PYTHON -m pip install --target` (about 3 s). Where that Python
# has no pip module (Debian's python3 without python3-pip), a throwaway venv brings one. DIR is shared
# by every clone of this user (the Makefile's UV_BOOTSTRAP_DIR), so it is filled once per version: into a
# temporary folder first, then renamed into place, so two makes at once cannot leave half an install.
# pip's own output is shown only when it fails.
set -euo pipefail
root="$1" version="$2" python="${3:-python3}"
dir="$root/$version"
[[ -x "$dir/bin/uv" ]] && exit 0

mkdir -p "$root"
work="$(mktemp -d "$root/.$version.XXXXXX")"
log="$work.log"
trap 'rm -rf "$work" "$log"' EXIT
pip_args=(install --disable-pip-version-check --no-input --quiet --no-deps --target "$work/uv" "uv==$version")
ok=0
if "$python" -m pip --version >/dev/null 2>&1; then
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip "${pip_args[@]}" >"$log" 2>&1 || ok=$?
else
  { "$python" -m venv "$work/pip" && PIP_ROOT_USER_ACTION=ignore "$work/pip/bin/python" -m pip "${pip_args[@]}"; } >"$log" 2>&1 || ok=$?
fi
if ((ok != 0)) || [[ ! -x "$work/uv/bin/uv" ]]; then
  cat "$log" >&2
  echo "bootstrap-uv: could not install uv==$version from PyPI with $python's pip" >&2
  exit 1
fi
got="$("$work/uv/bin/uv" --version)"
[[ "$got" == "uv $version"* ]] || { echo "bootstrap-uv: expected uv $version, got: $got" >&2; exit 1; }
# Another make may have finished first: then its copy stays, and this one is dropped.
mv -T "$work/uv" "$dir" 2>/dev/null || [[ -x "$dir/bin/uv" ]]
