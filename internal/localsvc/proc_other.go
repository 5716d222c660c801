//go:build unix && !linux

package localsvc

import "syscall"

// sysProcAttr runs a child as cred (when not nil) in a process group of its
// own. Only Linux has a parent-death signal, so elsewhere a server outlives a
// process that dies without running its cleanup.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}
