// Package systemd holds Linesight's systemd unit (linesight.service:
// Type=notify with a watchdog, its state directory, hardening) and checks
// it with systemd's own tools. It has no Go code of its own: the daemon's
// sd_notify side is in package daemon, and cross/deb.sh installs the unit.
package systemd
