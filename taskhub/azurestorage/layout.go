package azurestorage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

// LayoutMismatchError reports a task hub stored with another partition
// count than the one configured. It matches backend.ErrLayoutMismatch.
type LayoutMismatchError struct {
	Hub        string
	Configured int
	// Found is the partition count the stored hub has (0 = more or fewer
	// than configured, exact number unknown).
	Found int
	// Evidence says what storage shows, e.g. "control queues xyz-control-00..07".
	Evidence string
}

// Error implements error.
func (e *LayoutMismatchError) Error() string {
	found, fix := "another number of", "the hub's partition count"
	if e.Found > 0 {
		found = strconv.Itoa(e.Found)
		fix = found + " partitions"
	}
	return fmt.Sprintf("task hub %s has %s partitions (%s), but this app is configured with %d: "+
		"instances would be routed to the wrong control queues; configure %s, or use a new task hub name",
		e.Hub, found, e.Evidence, e.Configured, fix)
}

// Unwrap returns backend.ErrLayoutMismatch.
func (e *LayoutMismatchError) Unwrap() error { return backend.ErrLayoutMismatch }

// checkLayout compares the stored hub with the configured partition count.
// Routing is FNV-1a modulo the count, so every process of a hub must agree
// on it. Evidence, in order:
//   - taskhub.json of Durable Task's blob partition manager names the count;
//   - a control queue or Partitions row with an index at or beyond the
//     count means the hub has more partitions;
//   - Partitions rows for fewer indexes than configured while control
//     queues are missing too mean the hub has fewer: CreateTaskHub inserts
//     rows only once every queue exists, so an interrupted creation of ours
//     leaves all queues, or no rows.
//
// A hub without any of these (new, or half-created) passes.
func (s *Store) checkLayout(ctx context.Context) error {
	mismatch := func(found int, evidence string) error {
		return &LayoutMismatchError{Hub: s.hub, Configured: s.partitions, Found: found, Evidence: evidence}
	}
	n, err := s.blobTaskHubPartitionCount(ctx)
	if err != nil {
		return err
	}
	if n > 0 && n != s.partitions {
		return mismatch(n, fmt.Sprintf("PartitionCount %d in %s/taskhub.json", n, s.blobLeasesContainerName()))
	}
	queues, err := s.controlQueueIndexes(ctx)
	if err != nil {
		return err
	}
	rows, err := s.ReadPartitions(ctx)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	rowIdx := map[int]bool{}
	for _, l := range rows {
		if l.Partition >= 0 {
			rowIdx[l.Partition] = true
		}
	}
	if beyond := above(queues, s.partitions); len(beyond) > 0 {
		return mismatch(countOrZero(queues), "control queues "+s.indexList(queues))
	}
	if beyond := above(rowIdx, s.partitions); len(beyond) > 0 {
		return mismatch(countOrZero(rowIdx), fmt.Sprintf("rows %s in table %s", s.indexList(rowIdx), s.PartitionsTableName()))
	}
	if len(rowIdx) > 0 && len(rowIdx) < s.partitions && len(queues) < s.partitions {
		return mismatch(countOrZero(rowIdx), fmt.Sprintf("rows %s in table %s and control queues %s",
			s.indexList(rowIdx), s.PartitionsTableName(), s.indexList(queues)))
	}
	return nil
}

// controlQueueIndexes lists the partition indexes of the hub's existing
// control queues.
func (s *Store) controlQueueIndexes(ctx context.Context) (map[int]bool, error) {
	prefix := strings.ToLower(s.hub) + "-control-"
	out := map[int]bool{}
	pager := s.queueService.NewListQueuesPager(&azqueue.ListQueuesOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, queueError("list control queues", err)
		}
		for _, q := range page.Queues {
			if q.Name == nil {
				continue
			}
			if i, err := strconv.Atoi(strings.TrimPrefix(*q.Name, prefix)); err == nil && i >= 0 {
				out[i] = true
			}
		}
	}
	return out, nil
}

func above(set map[int]bool, n int) []int {
	var out []int
	for i := range set {
		if i >= n {
			out = append(out, i)
		}
	}
	return out
}

// countOrZero is the partition count a contiguous set 0..n-1 shows, else 0.
func countOrZero(set map[int]bool) int {
	for i := range len(set) {
		if !set[i] {
			return 0
		}
	}
	return len(set)
}

// indexList renders a set of partition indexes as queue names.
func (s *Store) indexList(set map[int]bool) string {
	if len(set) == 0 {
		return "none"
	}
	idx := make([]int, 0, len(set))
	for i := range set {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	if c := countOrZero(set); c > 1 {
		return fmt.Sprintf("%s..%02d", s.ControlQueueName(0), c-1)
	}
	names := make([]string, len(idx))
	for i, p := range idx {
		names[i] = s.ControlQueueName(p)
	}
	return strings.Join(names, ", ")
}
