// Package routing is the Durable Task routing of orchestration instances to
// control queues, shared by every backend so that all of them put an
// instance on the same partition: FNV-1a (32 bits) of the instance ID's
// UTF-8 bytes, modulo the partition count.
package routing

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
