// Package routing is the Durable Task routing of orchestration instances to
// control queues, shared by every backend so that all of them put an
// instance on the same partition (FNV-1a, 32 bits, of the instance ID's
// UTF-8 bytes, modulo the partition count) and name the queues alike.
package routing

import (
	"fmt"
	"strings"
)

// FNV1a32 is the 32-bit FNV-1a hash of the UTF-8 bytes of s, the hash
// Durable Task uses to route instances to control queues (and to derive app
// lease IDs from app names).
func FNV1a32(s string) uint32 {
	const (
		offsetBasis = 2166136261
		prime       = 16777619
	)
	h := uint32(offsetBasis)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

// Partition returns the control-queue index of instanceID among partitions
// control queues (partitions must be at least 1).
func Partition(instanceID string, partitions int) int {
	return int(FNV1a32(instanceID) % uint32(partitions))
}

// ControlQueue returns the name of control queue partition of hub, as
// Durable Task names it, e.g. "xyz-control-03".
func ControlQueue(hub string, partition int) string {
	return fmt.Sprintf("%s-control-%02d", strings.ToLower(hub), partition)
}

// WorkItemQueue returns the name of hub's activity queue, e.g.
// "xyz-workitems".
func WorkItemQueue(hub string) string { return strings.ToLower(hub) + "-workitems" }

// WakeQueue returns the name of hub's wake queue, e.g. "xyz-wake": the
// queue a queueTrigger function listens on so that the Functions host
// starts a worker when work is due (our addition; Durable Task has none).
func WakeQueue(hub string) string { return strings.ToLower(hub) + "-wake" }
