package hostemulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/handler"
)

// queueVisibilityTimeout is how long a dequeued message stays invisible
// (the queue listener's default), reflected in NextVisibleTime.
const queueVisibilityTimeout = 10 * time.Minute

// queueMessageTTL is the default time to live of a queue message.
const queueMessageTTL = 7 * 24 * time.Hour

// InvokeQueueTrigger invokes a queueTrigger function with a message whose
// decoded text is messageText, as the Storage Queues extension does
// (reference 2.6): Data.<trigger> is the text double-encoded (base64 of its
// bytes for "dataType": "binary"); Metadata carries DequeueCount, Id,
// PopReceipt, InsertionTime, ExpirationTime, NextVisibleTime, the top-level
// properties of a JSON message, and sys. Message encoding on the queue
// (base64 or none) is the storage layer's concern: pass the decoded text.
func (h *Host) InvokeQueueTrigger(ctx context.Context, functionName, messageText string, dequeueCount int64) (*InvocationResult, error) {
	f, err := h.triggerFunction(functionName, "queueTrigger")
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	data, md, err := queueInvocation(f, messageText, queueMeta{
		id: newGUID(), popReceipt: base64.StdEncoding.EncodeToString([]byte(newGUID()))[:24], dequeueCount: dequeueCount,
		inserted: now, expires: now.Add(queueMessageTTL), nextVisible: now.Add(queueVisibilityTimeout),
	})
	if err != nil {
		return nil, err
	}
	return h.invoke(ctx, f, data, md)
}

// queueMeta is what the trigger metadata says of a queue message.
type queueMeta struct {
	id, popReceipt                 string
	dequeueCount                   int64
	inserted, expires, nextVisible time.Time
}

func queueInvocation(f handler.FunctionInfo, messageText string, m queueMeta) (map[string]any, *foldMap, error) {
	trigger := triggerBinding(f)
	var value any = messageText
	if strings.EqualFold(trigger.DataType, "binary") {
		value = []byte(messageText)
	}
	enc, err := encodeValue(value)
	if err != nil {
		return nil, nil, err
	}
	md := newFoldMap()
	md.set("QueueTrigger", messageText) // dropped by encodeMetadata, as by the host
	md.set("DequeueCount", m.dequeueCount)
	md.set("ExpirationTime", m.expires.UTC())
	md.set("Id", m.id)
	md.set("InsertionTime", m.inserted.UTC())
	md.set("NextVisibleTime", m.nextVisible.UTC())
	md.set("PopReceipt", m.popReceipt)
	promoteJSON(md, messageText)
	metadata, err := encodeMetadata(md, f.Name)
	if err != nil {
		return nil, nil, err
	}
	return map[string]any{f.TriggerName: enc}, metadata, nil
}

// TimerInfo is a timerTrigger's trigger value.
type TimerInfo struct {
	// ScheduleStatus is nil when schedule monitoring is off.
	ScheduleStatus *ScheduleStatus
	// IsPastDue reports a late invocation.
	IsPastDue bool
}

// ScheduleStatus is TimerInfo.ScheduleStatus.
type ScheduleStatus struct {
	// Last is the last scheduled occurrence.
	Last time.Time
	// Next is the next scheduled occurrence.
	Next time.Time
	// LastUpdated is when the status was last written.
	LastUpdated time.Time
}

// InvokeTimerTrigger invokes a timerTrigger function (reference 2.7):
// Data.<trigger> is {"Schedule":{"AdjustForDST":...},"ScheduleStatus":...,
// "IsPastDue":...} as a nested object (AdjustForDST is true for CRON
// schedules, false for TimeSpan ones); Metadata is sys only.
func (h *Host) InvokeTimerTrigger(ctx context.Context, functionName string, timer TimerInfo) (*InvocationResult, error) {
	f, err := h.triggerFunction(functionName, "timerTrigger")
	if err != nil {
		return nil, err
	}
	data, md, err := timerInvocation(f, timer)
	if err != nil {
		return nil, err
	}
	return h.invoke(ctx, f, data, md)
}

func timerInvocation(f handler.FunctionInfo, timer TimerInfo) (map[string]any, *foldMap, error) {
	var schedule string
	if raw, ok := triggerBinding(f).Properties["schedule"]; ok {
		_ = json.Unmarshal(raw, &schedule)
	}
	// A TimeSpan schedule looks like hh:mm:ss; everything else is CRON.
	_, spanErr := handler.ParseTimeSpan(schedule)
	value := map[string]any{
		"Schedule":       map[string]any{"AdjustForDST": spanErr != nil},
		"ScheduleStatus": nil,
		"IsPastDue":      timer.IsPastDue,
	}
	if s := timer.ScheduleStatus; s != nil {
		value["ScheduleStatus"] = map[string]string{
			"Last":        s.Last.Format(layoutDateTimeLocal),
			"Next":        s.Next.Format(layoutDateTimeLocal),
			"LastUpdated": s.LastUpdated.Format(layoutDateTimeLocal),
		}
	}
	enc, err := encodeValue(value)
	if err != nil {
		return nil, nil, err
	}
	md := newFoldMap()
	md.set("TimerTrigger", "") // dropped by encodeMetadata, as by the host
	metadata, err := encodeMetadata(md, f.Name)
	if err != nil {
		return nil, nil, err
	}
	return map[string]any{f.TriggerName: enc}, metadata, nil
}

func (h *Host) triggerFunction(name, triggerType string) (handler.FunctionInfo, error) {
	f, ok := h.cfg.Function(name)
	if !ok {
		return handler.FunctionInfo{}, fmt.Errorf("hostemulator: no function %q", name)
	}
	if !strings.EqualFold(f.TriggerType, triggerType) {
		return handler.FunctionInfo{}, fmt.Errorf("hostemulator: function %q has a %s, not a %s", name, f.TriggerType, triggerType)
	}
	return f, nil
}

func triggerBinding(f handler.FunctionInfo) handler.Binding {
	for _, b := range f.Bindings {
		if b.Name == f.TriggerName {
			return b
		}
	}
	return handler.Binding{}
}
