package azurestorage

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/go-durable/durablefunctions/taskhub/backend"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// TestInstanceEntityMergeEncoding checks that a merge names every value it
// clears: a Merge leaves unnamed columns as stored.
func TestInstanceEntityMergeEncoding(t *testing.T) {
	s := &Store{hub: "MyHub"}
	tests := []struct {
		name        string
		st          backend.InstanceState
		merge       bool
		contains    []string
		notContains []string
	}{
		{"merge clears empty values", backend.InstanceState{InstanceID: "i", Status: history.StatusRunning, CreatedTime: ts(1, 0)}, true,
			[]string{`"Input":"","InputBlobName":""`, `"Output":"","OutputBlobName":""`}, []string{"CompletedTime"}},
		{"merge with values", backend.InstanceState{InstanceID: "i", Input: `1`, Output: `2`, Status: history.StatusCompleted, CompletedTime: ts(2, 0)}, true,
			[]string{`"Input":"1"`, `"Output":"2"`, `"CompletedTime@odata.type":"Edm.DateTime"`}, []string{"BlobName"}},
		{"replace omits empty values", backend.InstanceState{InstanceID: "i", Status: history.StatusPending}, false,
			nil, []string{`"Input"`, `"Output"`, "BlobName"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := s.instanceEntity(&tc.st, tc.merge)
			if err != nil {
				t.Fatal(err)
			}
			data, err := e.marshal()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.contains {
				if !strings.Contains(string(data), w) {
					t.Errorf("row lacks %s: %s", w, data)
				}
			}
			for _, w := range tc.notContains {
				if strings.Contains(string(data), w) {
					t.Errorf("row has %s: %s", w, data)
				}
			}
		})
	}
}

// TestMergeInstance: a merge keeps columns written by other tools, clears
// what it must, and is fenced by the ETag like UpdateInstance, which (as a
// client start) replaces the whole row.
func TestMergeInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	done := backend.InstanceState{
		InstanceID: "merge/1", Name: "Orch", ExecutionID: "e1", Input: `"in"`, Output: `"out"`,
		CreatedTime: ts(1, 0), LastUpdatedTime: ts(2, 0), CompletedTime: ts(2, 0), Status: history.StatusFailed,
	}
	if _, err := s.CreateInstance(ctx, done); err != nil {
		t.Fatal(err)
	}
	pk := escapeKey(done.InstanceID)
	foreign, _ := json.Marshal(map[string]any{"PartitionKey": pk, "RowKey": "", "Foreign": "kept"})
	star := azcore.ETagAny
	if _, err := s.instances.UpdateEntity(ctx, foreign, &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeMerge, IfMatch: &star}); err != nil {
		t.Fatal(err)
	}
	stored, err := s.GetInstance(ctx, done.InstanceID, true)
	if err != nil {
		t.Fatal(err)
	}

	// A new execution of the instance (a rewind, say): nothing to show yet.
	live := stored
	live.ExecutionID, live.Input, live.Output, live.CompletedTime = "e2", "", "", time.Time{}
	live.Status = history.StatusRunning
	etag, err := s.MergeInstance(ctx, live)
	if err != nil || etag == "" || etag == stored.ETag {
		t.Fatalf("MergeInstance = %q, %v", etag, err)
	}
	raw := rawRow(t, s.instances, pk, "")
	for col, want := range map[string]string{"Foreign": "kept", "Input": "", "Output": "", "InputBlobName": "", "ExecutionId": "e2", "RuntimeStatus": "Running"} {
		got, err := raw.str(col)
		if _, present := raw[col]; !present || err != nil || got != want {
			t.Errorf("stored %s = %q (present %v, %v), want %q", col, got, present, err, want)
		}
	}
	got, err := s.GetInstance(ctx, done.InstanceID, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != history.StatusRunning || got.Input != "" || got.Output != "" || !got.CompletedTime.IsZero() {
		t.Errorf("read back %+v: a live row has no input, output or completion time here", got)
	}

	if _, err := s.MergeInstance(ctx, live); !errors.Is(err, backend.ErrConflict) {
		t.Errorf("MergeInstance with a stale ETag = %v, want ErrConflict", err)
	}
	missing := backend.InstanceState{InstanceID: "merge/none", ETag: etag}
	if _, err := s.MergeInstance(ctx, missing); !errors.Is(err, backend.ErrConflict) || !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("fenced merge of a missing row = %v, want ErrConflict and ErrNotFound", err)
	}

	// A client start replaces the row, as Durable Task's does.
	restart := got
	restart.ExecutionID, restart.Status, restart.Generation = "e3", history.StatusPending, 1
	if _, err := s.UpdateInstance(ctx, restart); err != nil {
		t.Fatal(err)
	}
	if raw := rawRow(t, s.instances, pk, ""); raw["Foreign"] != nil {
		t.Errorf("a replace kept the foreign column: %s", raw["Foreign"])
	}
}

// TestInstanceInputBlobName reads rows that a Durable Task client wrote
// for a large input: Input "" and InputBlobName naming a blob.
func TestInstanceInputBlobName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newTestStore(t)
	input := bigJSON(7, 70_000)
	name := "dtfx-input/history--Input-0A1B2C3D-Input.json.gz"
	if err := s.blobs.upload(ctx, name, []byte(input)); err != nil {
		t.Fatal(err)
	}
	for id, blob := range map[string]string{"dtfx-input": name, "dtfx-lost": "dtfx-lost/history--Input-00000000-Input.json.gz"} {
		row, _ := json.Marshal(map[string]any{
			"PartitionKey": id, "RowKey": "", "Input": "", "InputBlobName": blob, "Name": "Orch",
			"ExecutionId": "e1", "RuntimeStatus": "Pending", "Generation": 0, "Tags": "null", "CustomStatus": "null",
		})
		if _, err := s.instances.AddEntity(ctx, row, nil); err != nil {
			t.Fatal(err)
		}
	}

	got, err := s.GetInstance(ctx, "dtfx-input", true)
	if err != nil || got.Input != input {
		t.Fatalf("GetInstance with input: %d characters (want %d), %v", len(got.Input), len(input), err)
	}
	if got, err := s.GetInstance(ctx, "dtfx-input", false); err != nil || got.Input != "" {
		t.Errorf("GetInstance without input: %d characters, %v", len(got.Input), err)
	}
	for _, withInput := range []bool{true, false} {
		page, _, err := s.QueryInstances(ctx, backend.InstanceQuery{InstanceIDPrefix: "dtfx-input", WithInput: withInput})
		want := ""
		if withInput {
			want = input
		}
		if err != nil || len(page) != 1 || page[0].Input != want {
			t.Errorf("QueryInstances(WithInput %v): %d rows, %v", withInput, len(page), err)
		}
	}
	if _, err := s.GetInstance(ctx, "dtfx-lost", true); !errors.Is(err, errBlobMissing) || !strings.Contains(err.Error(), "dtfx-lost/history--Input-00000000-Input.json.gz") {
		t.Errorf("GetInstance of a row whose input blob is gone = %v, want an error naming the blob", err)
	}
}
