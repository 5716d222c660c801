package localsvc

import "syscall"

// sysProcAttr runs a child as cred (when not nil) in a process group of its
// own, so a Ctrl-C in the terminal reaches only us and we stop servers in
// order, and with a parent-death signal, so the kernel kills the server when
// this process dies without running its cleanup (a test timeout, SIGKILL).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
