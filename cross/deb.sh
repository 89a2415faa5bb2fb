#!/bin/bash
# Packages a linesight binary as a Debian package with dpkg-deb:
#
#   cross/deb.sh amd64|arm64|armhf BINARY [OUTDIR]     default OUTDIR: bin/
#
# The package holds the binary (/usr/bin/linesight), the systemd unit
# (/lib/systemd/system/linesight.service), the commented example config as a
# conffile (/etc/linesight/linesight.yaml) and the docs. Its maintainer
# scripts create the `linesight` system user (in `video`, for cameras) and
# its state folder, and enable or start nothing: the operator does that with
# systemctl once a model and a bank are in place. An upgrade restarts the
# service only if it was running. Purge removes the state folder and the
# user.
#
# Depends is computed from the binary itself: every DT_NEEDED library is
# mapped to the Debian package that ships it, from the host's dpkg database
# for amd64 and from the sysroot's index (cross/sysroot.sh) otherwise, at the
# upstream version the binary was built against or newer.
#
# A static binary (no DT_NEEDED, e.g. cross/static.sh's CGO_ENABLED=0
# -tags nogocv builds) is packaged as linesight-static, with no Depends at
# all: it Provides, Conflicts with and Replaces linesight, and the GoCV
# package conflicts with and replaces it, so that either one installs over
# the other (dpkg -i or apt) and keeps the conffile, the user and the banks.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-} bin=${2:-} outdir=${3:-bin}
case $arch in
  amd64) triplet=x86_64-linux-gnu readelf=readelf ;;
  arm64) triplet=aarch64-linux-gnu readelf=aarch64-linux-gnu-readelf ;;
  armhf) triplet=arm-linux-gnueabihf readelf=arm-linux-gnueabihf-readelf ;;
  *) echo "usage: cross/deb.sh amd64|arm64|armhf BINARY [OUTDIR]" >&2; exit 2 ;;
esac
[ -x "$bin" ] || { echo "cross/deb.sh: no binary at $bin" >&2; exit 1; }
version=${LINESIGHT_VERSION:-$(cross/version.sh)} # cross/static.sh passes its own

# soname -> "package version"
pkgof() {
  local so=$1
  if [ "$arch" = amd64 ] && [ "$(dpkg --print-architecture)" = amd64 ]; then
    local path p
    path=$(awk -v so="$so" '$1 == so && $0 ~ /x86-64/ && !found {print $NF; found=1}' <<<"$ldcache")
    [ -n "$path" ] || { echo "cross/deb.sh: $so not found on this machine" >&2; return 1; }
    # dpkg knows the path the package shipped, which is /lib or /usr/lib
    # depending on how the library got there (merged /usr).
    p=$( (dpkg -S "$path" "/usr$path" "$(readlink -f "$path")" 2>/dev/null || true) | awk -F: 'NR == 1 {print $1}')
    echo "$p $(dpkg-query -W -f '${Version}' "$p:amd64" 2>/dev/null || dpkg-query -W -f '${Version}' "$p")"
  else
    local real
    real=$(basename "$(readlink -f "$root/usr/lib/$triplet/$so" 2>/dev/null || readlink -f "$root/lib/$triplet/$so")")
    awk -v f="$real" '$1 == f && !found {print $2, $3; found=1}' "$root/.shlibs"
  fi
}
# The host's readelf reads any ELF; the cross one is only needed when it is
# there (it was always used for the GoCV builds).
command -v "$readelf" >/dev/null || readelf=readelf
needed=$($readelf -d "$bin" | awk '/NEEDED/ {gsub(/[\[\]]/, "", $NF); print $NF}')
name=linesight
relations="Conflicts: linesight-static
Replaces: linesight-static"
if [ -z "$needed" ]; then
  name=linesight-static
  relations="Provides: linesight
Conflicts: linesight
Replaces: linesight"
fi
ldcache=$(ldconfig -p 2>/dev/null || true)
[ "$arch" = amd64 ] || [ -z "$needed" ] || root=$(cross/sysroot.sh --path "$arch")
depends=()
for so in $needed; do
  read -r p v < <(pkgof "$so")
  [ -n "${p:-}" ] || { echo "cross/deb.sh: no package ships $so" >&2; exit 1; }
  up=${v#*:}; up=${up%-*} # the upstream part: packages built on other revisions still match
  depends+=("$p (>= $up)")
done
deps=$( ((${#depends[@]})) && printf '%s\n' "${depends[@]}" | sort -u | paste -sd, | sed 's/,/, /g' || true)
depline=""
[ -z "$deps" ] || depline="Depends: $deps
"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/linesight
install -D -m 0755 "$bin" "$pkg/usr/bin/linesight"
install -D -m 0644 systemd/linesight.service "$pkg/lib/systemd/system/linesight.service"
install -D -m 0644 config/linesight.example.yaml "$pkg/etc/linesight/linesight.yaml"
install -D -m 0644 config/linesight.example.yaml "$pkg/usr/share/doc/linesight/examples/linesight.yaml"
install -D -m 0644 README.md "$pkg/usr/share/doc/linesight/README.md"
install -D -m 0644 LICENSE "$pkg/usr/share/doc/linesight/copyright"
mkdir -p "$pkg/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: Linesight developers <dev@linesight.invalid>
Installed-Size: $size
${depline}$relations
Section: science
Priority: optional
Homepage: https://github.com/linesight/linesight
Description: edge anomaly detection for production lines (PatchCore)
 Linesight grabs camera frames, runs an int8 backbone and compares patch
 features with a memory bank built from good parts only (PatchCore). It
 publishes pass/fail, scores and anomaly maps over MQTT to PLC/SCADA.
 .
 The service is installed but not enabled. Build or copy a model and a bank,
 edit /etc/linesight/linesight.yaml, then: systemctl enable --now linesight
EOF
echo /etc/linesight/linesight.yaml >"$pkg/DEBIAN/conffiles"

cat >"$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# Creates the service's user and state folder; enables and starts nothing.
set -e
if [ "$1" = configure ]; then
  getent group linesight >/dev/null || groupadd --system linesight
  if ! getent passwd linesight >/dev/null; then
    useradd --system --gid linesight --home-dir /var/lib/linesight --no-create-home \
      --shell /usr/sbin/nologin --comment "Linesight anomaly detection" linesight
  fi
  # Cameras (/dev/video*) belong to the video group.
  if getent group video >/dev/null; then usermod -a -G video linesight; fi
  install -d -o linesight -g linesight -m 0750 /var/lib/linesight
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    # An upgrade restarts the service only if it was running.
    if [ -n "$2" ]; then systemctl try-restart linesight.service >/dev/null || true; fi
  fi
fi
exit 0
EOF
cat >"$pkg/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop linesight.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat >"$pkg/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# remove keeps the config, the banks and the user; purge removes them.
set -e
case "$1" in
  remove)
    if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
    ;;
  purge)
    # The other flavour (linesight or linesight-static) took over: its
    # binary is there, and the banks, config and user are its own now.
    if [ -e /usr/bin/linesight ]; then exit 0; fi
    if [ -d /run/systemd/system ]; then
      systemctl disable linesight.service >/dev/null 2>&1 || true
      systemctl daemon-reload >/dev/null || true
    fi
    rm -rf /var/lib/linesight
    rmdir /etc/linesight 2>/dev/null || true
    if getent passwd linesight >/dev/null; then userdel linesight >/dev/null 2>&1 || true; fi
    if getent group linesight >/dev/null; then groupdel linesight >/dev/null 2>&1 || true; fi
    ;;
esac
exit 0
EOF
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"
mkdir -p "$outdir"
out=$outdir/${name}_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
echo "cross/deb.sh: $out ($(du -h "$out" | cut -f1)); Depends: ${deps:-(none: static)}"
