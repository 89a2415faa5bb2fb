// Package testenv is what Linesight's tests share about their surroundings:
// where the shared models, photos and datasets are, whether the race
// detector is on, a real MQTT broker to talk to, and a way to wait for a
// condition instead of sleeping.
//
// # The shared folder
//
// Real models, photos and MVTec AD bottle are too large (and not ours to
// redistribute) to live in the repository. They sit in a folder named
// "shared" beside the checkout, and [Shared] and [SharedFile] find it from
// any package folder by walking up to go.mod. A test that needs them skips
// with a message naming what is missing when they are not there, so a bare
// clone still runs every test that needs nothing more.
//
// # Waiting
//
// Tests never sleep to let something happen: they wait for the condition
// that says it happened ([Eventually], [WaitUntil]), with a generous
// timeout that only matters when the test is about to fail. A sleep that
// is long enough on a quiet machine is too short on a busy CI runner or
// under qemu, and too long everywhere else.
//
// # Brokers
//
// [Mosquitto] runs Debian's mosquitto on a free loopback port with a
// generated configuration, and can stop, kill and restart it on the same
// port for outage tests. Tests skip when mosquitto is not installed
// (scripts/deps.sh test installs it).
//
// # Full disks
//
// [Tmpfs] mounts a small tmpfs for the test (as root; skipped otherwise).
//
// Everything here calls t.Fatal or t.Skip, so it must be called from the
// goroutine running the test, as the testing package requires.
package testenv
