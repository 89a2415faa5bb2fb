//go:build !linux

package camera

import "syscall"

// procAttr puts a command in its own process group (so that stopping it
// reaches what it started).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
