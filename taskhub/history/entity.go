package history

import "strings"

// EntityID identifies a durable entity: the entity's name (case-insensitive:
// kept lowercased, as Durable Task stores it) and its key (case-sensitive).
type EntityID struct {
	Name string
	Key  string
}

// NewEntityID returns the ID of the entity name (lowercased) with key.
func NewEntityID(name, key string) EntityID {
	return EntityID{Name: strings.ToLower(name), Key: key}
}

// String returns the entity's instance ID in the Durable Task form,
// "@{name}@{key}".
func (id EntityID) String() string { return "@" + id.Name + "@" + id.Key }

// ParseEntityID returns the entity an instance ID names ("@{name}@{key}",
// the name lowercased), and false for an instance ID that is not an
// entity's (orchestration IDs may not start with '@').
func ParseEntityID(instanceID string) (EntityID, bool) {
	rest, ok := strings.CutPrefix(instanceID, "@")
	if !ok {
		return EntityID{}, false
	}
	name, key, ok := strings.Cut(rest, "@")
	if !ok || name == "" {
		return EntityID{}, false
	}
	return NewEntityID(name, key), true
}
