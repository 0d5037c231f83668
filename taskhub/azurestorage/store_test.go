package azurestorage

import (
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"bad hub", Options{ConnectionString: "UseDevelopmentStorage=true", HubName: "my-hub"}, "only letters and digits"},
		{"too many partitions", Options{ConnectionString: "UseDevelopmentStorage=true", HubName: "hub", PartitionCount: 17}, "outside 1..16"},
		{"negative partitions", Options{ConnectionString: "UseDevelopmentStorage=true", HubName: "hub", PartitionCount: -1}, "outside 1..16"},
		{"bad connection string", Options{ConnectionString: "nonsense", HubName: "hub"}, "invalid storage connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		partitions, wantCount int
		last                  string
	}{{0, 4, "myhub-control-03"}, {1, 1, "myhub-control-00"}, {16, 16, "myhub-control-15"}}
	for _, tt := range tests {
		s, err := New(Options{ConnectionString: "UseDevelopmentStorage=true", HubName: "MyHub", PartitionCount: tt.partitions})
		if err != nil {
			t.Fatal(err)
		}
		if s.PartitionCount() != tt.wantCount || s.HubName() != "MyHub" {
			t.Errorf("PartitionCount %d HubName %q", s.PartitionCount(), s.HubName())
		}
		names := s.queueNames()
		if len(names) != tt.wantCount+2 || names[tt.wantCount-1] != tt.last || names[tt.wantCount] != "myhub-workitems" || names[tt.wantCount+1] != "myhub-wake" {
			t.Errorf("queues %v", names)
		}
		if got := strings.Join(s.tableNames(), ","); got != "MyHubHistory,MyHubInstances,MyHubPartitions,MyHubPoison" {
			t.Errorf("tables %s", got)
		}
	}
}

func TestAlreadyExists(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&azcore.ResponseError{StatusCode: 409, ErrorCode: "TableAlreadyExists"}, true},
		{&azcore.ResponseError{StatusCode: 409, ErrorCode: "EntityAlreadyExists"}, true},
		{&azcore.ResponseError{StatusCode: 409, ErrorCode: "TableBeingDeleted"}, false},
		{&azcore.ResponseError{StatusCode: 409, ErrorCode: "QueueBeingDeleted"}, false},
		{&azcore.ResponseError{StatusCode: 404, ErrorCode: "ResourceNotFound"}, false},
		{errors.New("network"), false},
	}
	for _, tt := range tests {
		if got := alreadyExists(tt.err); got != tt.want {
			t.Errorf("alreadyExists(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
