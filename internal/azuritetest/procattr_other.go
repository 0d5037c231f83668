//go:build !linux

package azuritetest

import "os/exec"

// setParentDeathSignal is a no-op where the kernel offers no parent-death
// signal; Main and Server.Stop still stop the child on a normal exit.
func setParentDeathSignal(*exec.Cmd) {}
