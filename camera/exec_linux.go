package camera

import "syscall"

// procAttr puts a command in its own process group (so that stopping it
// reaches what it started) and has the kernel kill it if the daemon dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
