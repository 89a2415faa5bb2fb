// Package cross holds no code: the folder is the ARM cross-build and the
// Debian packaging (shell scripts run by the Makefile), and this package's
// tests check their products.
//
//   - sysroot.sh builds Debian 12 arm64/armhf sysroots with a private apt
//     (empty dpkg status) and dpkg-deb -x, cached between runs.
//   - build.sh cross-builds the full binary, GoCV included, against one.
//   - deb.sh packages a binary with the unit and the example config.
//   - qemu-test.sh runs the pure-Go packages' tests under qemu-user.
//
// The tests run from the Makefile (make test-cross, make test-deb), which
// builds what they check first; run alone they skip and say so.
package cross
