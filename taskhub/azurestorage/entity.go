package azurestorage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-durable/durablefunctions/taskhub/history"
)

// ErrPayloadTooLarge is wrapped by errors for values that do not fit Azure
// Storage limits even though large payloads move to blobs (largeblob.go): a
// table column that is not offloaded (Version, say) above 64 KiB, an entity
// still above 1 MiB, a transaction above 4 MiB.
var ErrPayloadTooLarge = errors.New("payload too large")

// Azure Table storage limits (Azurite enforces only some of them).
const (
	maxStringUnits     = 32 * 1024   // UTF-16 code units per string property (64 KiB)
	maxBinaryBytes     = 64 * 1024   // bytes per binary property
	maxEntityBytes     = 1024 * 1024 // per entity, strings counted as UTF-16
	maxCustomProps     = 252         // besides PartitionKey, RowKey, Timestamp
	maxBatchOperations = 100
	// maxBatchBodyBytes keeps a transaction's request body clear of the
	// 4 MiB limit.
	maxBatchBodyBytes = 3584 * 1024
)

// minTableTime is the earliest Edm.DateTime Azure Table storage accepts.
var minTableTime = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)

// edmKind is the Entity Data Model type of a property.
type edmKind int

const (
	edmString edmKind = iota
	edmInt32
	edmInt64
	edmBool
	edmDateTime
	edmBinary
)

// property is one typed entity property.
type property struct {
	name string
	kind edmKind
	s    string
	i    int64
	b    bool
	t    time.Time
	bin  []byte
}

// entity is a table entity under construction, properties in order.
type entity struct {
	pk, rk string
	props  []property
}

func (e *entity) str(name, v string) {
	e.props = append(e.props, property{name: name, kind: edmString, s: v})
}

// optStr adds a string property unless v is empty (null values are not
// stored by the Table service).
func (e *entity) optStr(name, v string) {
	if v != "" {
		e.str(name, v)
	}
}

func (e *entity) int32(name string, v int32) {
	e.props = append(e.props, property{name: name, kind: edmInt32, i: int64(v)})
}

func (e *entity) int64(name string, v int64) {
	e.props = append(e.props, property{name: name, kind: edmInt64, i: v})
}

func (e *entity) bool(name string, v bool) {
	e.props = append(e.props, property{name: name, kind: edmBool, b: v})
}

// time adds an Edm.DateTime property; the zero time is omitted (null).
func (e *entity) time(name string, v time.Time) {
	if !v.IsZero() {
		e.props = append(e.props, property{name: name, kind: edmDateTime, t: v.UTC()})
	}
}

func (e *entity) binary(name string, v []byte) {
	e.props = append(e.props, property{name: name, kind: edmBinary, bin: v})
}

// validate checks the limits that Azure enforces and Azurite does not.
func (e *entity) validate() error {
	if len(e.props) > maxCustomProps {
		return fmt.Errorf("azurestorage: entity (%q, %q) has %d properties, the limit is %d", e.pk, e.rk, len(e.props), maxCustomProps)
	}
	for _, k := range []string{e.pk, e.rk} {
		if n := utf16Len(k); n > maxKeyUnits {
			return fmt.Errorf("azurestorage: key of %d UTF-16 code units exceeds the limit of %d", n, maxKeyUnits)
		}
	}
	size := 4 + 2*utf16Len(e.pk) + 2*utf16Len(e.rk)
	for _, p := range e.props {
		size += 8 + 2*utf16Len(p.name)
		switch p.kind {
		case edmString:
			n := utf16Len(p.s)
			if n > maxStringUnits {
				return fmt.Errorf("azurestorage: property %s of entity (%q, %q) is %d UTF-16 code units, the table limit is %d (this column is not moved to a blob when large): %w",
					p.name, e.pk, e.rk, n, maxStringUnits, ErrPayloadTooLarge)
			}
			size += 4 + 2*n
		case edmBinary:
			if len(p.bin) > maxBinaryBytes {
				return fmt.Errorf("azurestorage: property %s of entity (%q, %q) is %d bytes, the table limit is %d: %w",
					p.name, e.pk, e.rk, len(p.bin), maxBinaryBytes, ErrPayloadTooLarge)
			}
			size += 4 + len(p.bin)
		case edmInt32:
			size += 4
		case edmBool:
			size++
		default:
			size += 8
		}
		if p.kind == edmDateTime && p.t.Before(minTableTime) {
			return fmt.Errorf("azurestorage: property %s = %s is before 1601, the earliest date Azure Table storage stores", p.name, p.t)
		}
	}
	if size > maxEntityBytes {
		return fmt.Errorf("azurestorage: entity (%q, %q) is %d bytes (strings as UTF-16), the table limit is %d: %w",
			e.pk, e.rk, size, maxEntityBytes, ErrPayloadTooLarge)
	}
	return nil
}

// marshal validates the entity and renders it as Table service JSON with
// odata.type annotations for the types that need them.
func (e *entity) marshal() ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"PartitionKey":`)
	writeJSONString(&b, e.pk)
	b.WriteString(`,"RowKey":`)
	writeJSONString(&b, e.rk)
	for _, p := range e.props {
		b.WriteByte(',')
		writeJSONString(&b, p.name)
		b.WriteByte(':')
		annotation := ""
		switch p.kind {
		case edmString:
			writeJSONString(&b, p.s)
		case edmInt32:
			b.WriteString(strconv.FormatInt(p.i, 10))
		case edmInt64:
			b.WriteString(`"` + strconv.FormatInt(p.i, 10) + `"`)
			annotation = "Edm.Int64"
		case edmBool:
			b.WriteString(strconv.FormatBool(p.b))
		case edmDateTime:
			b.WriteString(`"` + formatTime(p.t) + `"`)
			annotation = "Edm.DateTime"
		case edmBinary:
			b.WriteString(`"` + base64.StdEncoding.EncodeToString(p.bin) + `"`)
			annotation = "Edm.Binary"
		}
		if annotation != "" {
			b.WriteByte(',')
			writeJSONString(&b, p.name+"@odata.type")
			b.WriteString(`:"` + annotation + `"`)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// parseRow decodes an entity as returned by the Table service.
func parseRow(data []byte) (members, error) {
	var r members
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("azurestorage: malformed entity JSON: %w", err)
	}
	return r, nil
}

// binaryOrString returns a property stored either as Edm.Binary (UTF-8
// bytes) or as a string.
func (m members) binaryOrString(k string) (string, error) {
	s, err := m.str(k)
	if err != nil {
		return "", err
	}
	if t, _ := m.str(k + "@odata.type"); t == "Edm.Binary" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		return string(b), nil
	}
	return s, nil
}

// etag returns a row's ETag from the odata metadata.
func (m members) etag() string {
	s, _ := m.str("odata.etag")
	return s
}

// formatTime renders t in UTC ISO 8601 with at most 7 fractional digits
// (trailing zeros trimmed) and a Z, the form .NET writes and reads.
func formatTime(t time.Time) string {
	return history.StorageTime(t).Format("2006-01-02T15:04:05.9999999Z")
}

// parseTime reads an ISO 8601 date; a date without zone is taken as UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse("2006-01-02T15:04:05.999999999", s); err2 != nil {
			return time.Time{}, fmt.Errorf("bad date %q: %w", s, err)
		}
	}
	// A writer with more digits than storage keeps (none of .NET's) is read
	// as storage would keep it.
	return history.StorageTime(t), nil
}
