#!/bin/sh
# Prints the version stamped into binaries and packages: the last tag if the
# tree is at one, else 0.0~git<commit time>.<commit>, which sorts by commit
# time so that apt sees every later build as an upgrade. "+dirty" marks a
# build from uncommitted changes.
cd "$(dirname "$0")/.." || exit 1
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | head -1)
if tag=$(git describe --tags --exact-match 2>/dev/null); then
  v=${tag#v}
elif git rev-parse HEAD >/dev/null 2>&1; then
  v=0.0~git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git rev-parse --short=7 HEAD)
else
  v=0.0~unknown
fi
[ -n "$dirty" ] && v=$v+dirty
echo "$v"
