//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package main

import "syscall"

// ioctlGetTermios is the request that reads a terminal's settings; it
// fails on anything that is not a terminal (such as /dev/null).
const ioctlGetTermios = syscall.TIOCGETA
