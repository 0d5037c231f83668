package funcapp

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// TestGateCoversEveryStorageCall calls every backend.Backend method that
// reaches storage on a gate that is not ready and whose backend is nil: a
// method the gate does not cover would reach the nil backend and panic.
func TestGateCoversEveryStorageCall(t *testing.T) {
	notReady := &backend.UnavailableError{Hub: "Hub1", Reason: "starting"}
	var g backend.Backend = gatedBackend{ready: func(context.Context) error { return notReady }}
	v := reflect.ValueOf(g)
	typ := reflect.TypeFor[backend.Backend]()
	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		if m.Type.NumIn() == 0 || m.Type.In(0) != ctxType {
			continue // HubName, PartitionCount, PartitionOf: no storage call
		}
		t.Run(m.Name, func(t *testing.T) {
			args := []reflect.Value{reflect.ValueOf(context.Background())}
			for j := 1; j < m.Type.NumIn(); j++ {
				args = append(args, reflect.Zero(m.Type.In(j)))
			}
			var out []reflect.Value
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s is not gated: it reached the backend (%v)", m.Name, r)
					}
				}()
				out = v.MethodByName(m.Name).Call(args)
			}()
			last := out[len(out)-1]
			if last.Type() != errType || last.IsNil() {
				t.Fatalf("%s returned no error", m.Name)
			}
			if err := last.Interface().(error); !errors.Is(err, backend.ErrUnavailable) {
				t.Fatalf("%s: %v, want ErrUnavailable", m.Name, err)
			}
		})
	}
}
