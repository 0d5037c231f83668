package history

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// EntityID identifies a durable entity: the entity's name (case-insensitive:
// kept lowercased, as Durable Functions stores it) and its key
// (case-sensitive).
//
// In entity messages (a lock set) it is the JSON object {"name":...,"key":...}
// of Durable Task's EntityId (DurableTask.Core/Entities/EntityId.cs,
// Azure/durabletask@5217032961abf45846f462732a5e2813316e3747). Durable Task
// Core keeps the name as given; the Durable Functions extension lowercases it
// (WebJobs.Extensions.DurableTask/EntityScheduler/EntityId.cs,
// Azure/azure-functions-durable-extension@a7c6d6944041b48267ed8409bb8ec8144ab9bab9),
// and so do we.
type EntityID struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// ErrInvalidEntityID is wrapped by every error EntityID.Validate returns.
var ErrInvalidEntityID = errors.New("invalid entity ID")

// NewEntityID returns the ID of the entity name (lowercased) with key.
func NewEntityID(name, key string) EntityID {
	return EntityID{Name: strings.ToLower(name), Key: key}
}

// String returns the entity's instance ID in the Durable Task form,
// "@{name}@{key}".
func (id EntityID) String() string { return "@" + id.Name + "@" + id.Key }

// Validate reports whether id can name an entity: the name is non-empty,
// has no '@' (it would end the name in the instance ID), no '/' (the HTTP
// route entities/{name}/{key}) and no control characters; the key is
// non-empty, has no '/' and no control characters. The error wraps
// ErrInvalidEntityID and says which part is wrong and where.
func (id EntityID) Validate() error {
	if err := validateEntityPart("name", id.Name, "@/"); err != nil {
		return fmt.Errorf("history: %w %q: %v", ErrInvalidEntityID, id.String(), err)
	}
	if err := validateEntityPart("key", id.Key, "/"); err != nil {
		return fmt.Errorf("history: %w %q: %v", ErrInvalidEntityID, id.String(), err)
	}
	return nil
}

func validateEntityPart(part, s, forbidden string) error {
	if s == "" {
		return fmt.Errorf("the entity %s is empty", part)
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Errorf("the entity %s is not valid UTF-8 at byte %d", part, i)
		case unicode.IsControl(r):
			return fmt.Errorf("the entity %s has the control character %U at byte %d", part, r, i)
		case strings.ContainsRune(forbidden, r):
			return fmt.Errorf("the entity %s may not contain %q (at byte %d)", part, r, i)
		}
	}
	return nil
}

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

// IsEntityInstanceID reports whether an instance ID belongs to an entity:
// Durable Task treats every instance ID starting with '@' as one
// (DurableTask.Core/Common/Entities.cs IsEntityInstance).
func IsEntityInstanceID(instanceID string) bool { return strings.HasPrefix(instanceID, "@") }

// Compare orders entity IDs by name, then key, byte-wise: the global order
// in which a critical section acquires its locks, so that two
// orchestrations locking overlapping sets cannot deadlock. (Durable Task
// compares the (name, key) pairs too.) It returns -1, 0 or +1.
func (id EntityID) Compare(o EntityID) int {
	if c := strings.Compare(id.Name, o.Name); c != 0 {
		return c
	}
	return strings.Compare(id.Key, o.Key)
}
