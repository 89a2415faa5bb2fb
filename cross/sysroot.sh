#!/bin/bash
# Builds a Debian 12 (bookworm) sysroot for arm64 or armhf, for cross-building
# linesight with GoCV, without touching the host's dpkg database or apt setup:
#
#   cross/sysroot.sh arm64|armhf        builds or refreshes it; prints its path
#   cross/sysroot.sh --path arm64|armhf prints where it is, touching nothing
#
# apt runs with a private configuration (its own sources, lists, cache and an
# empty dpkg status), so it resolves the complete dependency closure of the
# target packages as if the target machine were empty, and only downloads.
# Each .deb is then unpacked with `dpkg-deb -x`. Nothing is configured, so the
# things maintainer scripts would have done are done here: the BLAS/LAPACK
# alternatives links (libblas.so.3 and liblapack.so.3, which OpenCV's core
# links) and absolute symlinks made relative so they resolve inside the root.
#
# Downloads and the unpacked root are cached under $LINESIGHT_CACHE
# (default ~/.cache/linesight/cross) and reused while the package list and
# the archive's versions are unchanged; apt's lists are refreshed once a day.
set -euo pipefail
only_path=no
if [ "${1:-}" = --path ]; then only_path=yes; shift; fi
arch=${1:-}
case $arch in
  arm64) triplet=aarch64-linux-gnu ;;
  armhf) triplet=arm-linux-gnueabihf ;;
  *) echo "usage: cross/sysroot.sh arm64|armhf" >&2; exit 2 ;;
esac
mirror=${DEBIAN_MIRROR:-http://deb.debian.org}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cache=${LINESIGHT_CACHE:-$HOME/.cache/linesight/cross}
apt=$cache/apt-$arch
root=$cache/sysroot-$arch
log() { echo "sysroot $arch: $*" >&2; }
if [ $only_path = yes ]; then
  [ -f "$root/.packageset" ] || { log "not built yet (cross/sysroot.sh $arch builds it)"; exit 1; }
  echo "$root"; exit 0
fi

# What GoCV's main package needs: the OpenCV modules opencv2/opencv.hpp pulls
# in (headers and .so links, from the -dev packages) and the C/C++ toolchain's
# target libraries. The -dev packages are downloaded without their own
# dependencies (libgtk-3-dev and friends are not needed to link); the runtime
# libraries come with their complete closure, because the linker follows
# every DT_NEEDED through -rpath-link.
modules="core imgproc imgcodecs videoio highgui video objdetect calib3d features2d flann dnn photo ml stitching"
dev=() run=()
for m in $modules; do dev+=("libopencv-$m-dev"); run+=("libopencv-$m"406); done
run+=(libc6-dev libstdc++-12-dev libgcc-12-dev linux-libc-dev)

mkdir -p "$apt"/{etc/apt/apt.conf.d,etc/apt/preferences.d,etc/apt/sources.list.d,lists/partial,archives/partial} "$apt/dpkg"
: >"$apt/dpkg/status"
cat >"$apt/apt.conf" <<EOF
Dir "$apt/";
Dir::Etc "$apt/etc/apt/";
Dir::Etc::sourcelist "$apt/etc/apt/sources.list";
Dir::Etc::sourceparts "$apt/etc/apt/sources.list.d/";
Dir::Etc::parts "$apt/etc/apt/apt.conf.d/";
Dir::Etc::preferencesparts "$apt/etc/apt/preferences.d/";
Dir::State "$apt/";
Dir::State::lists "$apt/lists/";
Dir::State::status "$apt/dpkg/status";
Dir::Cache "$apt/";
Dir::Cache::archives "$apt/archives/";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
EOF
cat >"$apt/etc/apt/sources.list" <<EOF
deb [arch=$arch signed-by=$keyring] $mirror/debian bookworm main
deb [arch=$arch signed-by=$keyring] $mirror/debian bookworm-updates main
deb [arch=$arch signed-by=$keyring] $mirror/debian-security bookworm-security main
EOF
export APT_CONFIG=$apt/apt.conf

stamp=$apt/lists/.updated
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
  log "apt-get update (private lists in $apt)"
  # Mirrors in the middle of a sync fail an index now and then: retry, and
  # go on with what was fetched (a missing bookworm-updates or -security
  # index only means older versions) as long as bookworm itself is there.
  ok=no
  for try in 1 2 3; do
    if apt-get update -qq >&2; then ok=yes; break; fi
    log "apt-get update failed (try $try of 3)"; sleep $((try * 2))
  done
  if [ $ok = no ]; then
    log "going on with the indexes that were fetched"
  fi
  touch "$stamp"
  if ! ls "$apt"/lists/*_debian_dists_bookworm_main_binary-${arch}_Packages* >/dev/null 2>&1; then
    log "no package index for bookworm/$arch"; exit 1
  fi
fi

# The exact set of .deb files (name_version_arch) decides whether the cached
# root is still good.
set_file=$apt/packageset
# apt prints only what is not downloaded yet, so it is asked against an empty
# archive folder.
mkdir -p "$apt/query/partial"
uris() { awk "{gsub(/'/, \"\"); print \$2}"; }
q=(-o "Dir::Cache::archives=$apt/query/")
apt-get "${q[@]}" install --download-only --print-uris -qq -y "${run[@]}" | uris >"$set_file.run"
apt-get "${q[@]}" download --print-uris -qq "${dev[@]}" | uris >"$set_file.dev"
if [ ! -s "$set_file.run" ] || [ ! -s "$set_file.dev" ]; then
  log "apt could not resolve: ${run[*]} ${dev[*]}"; exit 1
fi
sort -u "$set_file.run" "$set_file.dev" >"$set_file.new"
if [ -f "$root/.packageset" ] && cmp -s "$set_file.new" "$root/.packageset"; then
  log "up to date ($(wc -l <"$set_file.new") packages, $root)"
  echo "$root"; exit 0
fi

log "downloading $(wc -l <"$set_file.new") packages (cached in $apt/archives)"
apt-get install --download-only -qq -y "${run[@]}" >&2
(cd "$apt/archives" && apt-get download -qq "${dev[@]}" >&2)

log "unpacking into $root"
rm -rf "$root.tmp"
mkdir -p "$root.tmp"
while read -r f; do
  deb=$apt/archives/$f
  [ -f "$deb" ] || { log "missing download $f"; exit 1; }
  dpkg-deb -x "$deb" "$root.tmp"
  # Which package ships which shared library: cross/deb.sh turns the
  # binary's DT_NEEDED into Depends with it.
  pkg=$(dpkg-deb -f "$deb" Package Version | awk '{printf "%s ", $2}')
  dpkg-deb -c "$deb" | awk -v pkg="$pkg" '$6 ~ /\/lib[^\/]*\.so(\.[0-9]+)+$/ {n=split($6, p, "/"); print p[n], pkg}' >>"$root.tmp/.shlibs"
done <"$set_file.new"
# Stale versions from earlier runs are dropped from the download cache.
(cd "$apt/archives" && for f in *.deb; do grep -qxF "$f" "$set_file.new" || rm -f "$f"; done)

# Absolute symlinks point at the host; make them relative to the root.
find "$root.tmp" -type l | while read -r link; do
  target=$(readlink "$link")
  [[ $target == /* ]] || continue
  rel=$(realpath -m --relative-to="$(dirname "$link")" "$root.tmp$target")
  ln -sfn "$rel" "$link"
done

# The alternatives that libblas3/liblapack3's postinst would register.
libdir=$root.tmp/usr/lib/$triplet
for lib in blas lapack; do
  if [ -e "$libdir/$lib/lib$lib.so.3" ] && [ ! -e "$libdir/lib$lib.so.3" ]; then
    ln -s "$lib/lib$lib.so.3" "$libdir/lib$lib.so.3"
  fi
done
# The loader also looks for the merged-/usr paths the host takes for granted.
if [ ! -e "$root.tmp/lib/$triplet/libc.so.6" ] && [ -e "$libdir/libc.so.6" ]; then
  mkdir -p "$root.tmp/lib"
  ln -sfn "../usr/lib/$triplet" "$root.tmp/lib/$triplet"
fi

cp "$set_file.new" "$root.tmp/.packageset"
rm -rf "$root"
mv "$root.tmp" "$root"
log "ready: $(du -sh "$root" | cut -f1) in $root"
echo "$root"
