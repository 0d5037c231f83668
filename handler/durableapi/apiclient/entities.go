package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Entity is one entity of an entity list.
type Entity struct {
	// Name is the entity's name (lowercased, as Durable Functions stores it)
	// and Key its key.
	Name, Key string
	// LastOperationTime is when the entity last ran an operation.
	LastOperationTime time.Time
	// State is the entity's state as JSON, only with EntityFilter.WithState.
	State json.RawMessage
}

// UnmarshalJSON reads one entry of the API's entity list.
func (e *Entity) UnmarshalJSON(b []byte) error {
	var w struct {
		EntityID struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"entityId"`
		LastOperationTime string          `json:"lastOperationTime"`
		State             json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := parseTime("lastOperationTime", w.LastOperationTime)
	if err != nil {
		return err
	}
	*e = Entity{Name: w.EntityID.Name, Key: w.EntityID.Key, LastOperationTime: t, State: w.State}
	return nil
}

// EntityFilter selects entities for [Client.ListEntitiesPage].
type EntityFilter struct {
	// Name keeps only entities of this name; "" means all.
	Name string
	// WithState includes each entity's state (fetchState=true).
	WithState bool
	// PageSize is the number of entities per page (top); 0 leaves it to
	// the server.
	PageSize int
}

// ListEntitiesPage returns one page of the entities matching f, starting
// at continuation ("" for the first page), and the token of the next page
// ("" after the last).
func (c *Client) ListEntitiesPage(ctx context.Context, f EntityFilter, continuation string) ([]Entity, string, error) {
	q := url.Values{}
	if f.WithState {
		q.Set("fetchState", "true")
	}
	if f.PageSize > 0 {
		q.Set("top", strconv.Itoa(f.PageSize))
	}
	segs := []string{"entities"}
	if f.Name != "" {
		segs = append(segs, f.Name)
	}
	return getPage[Entity](ctx, c, c.endpoint(q, segs...), continuation)
}

// EntityState returns the state of entity name/key as JSON; ErrNotFound
// if the entity has no state (or the app has no such entity).
func (c *Client) EntityState(ctx context.Context, name, key string) (json.RawMessage, error) {
	u := c.endpoint(nil, "entities", name, key)
	r, err := c.call(ctx, http.MethodGet, u, nil, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(r.body), nil
}

// SignalEntity sends operation op with input (any value, sent as JSON;
// nil for none) to entity name/key, one way.
func (c *Client) SignalEntity(ctx context.Context, name, key, op string, input any) error {
	body, err := encodeInput("operation input", input)
	if err != nil {
		return err
	}
	u := c.endpoint(url.Values{"op": {op}}, "entities", name, key)
	_, err = c.call(ctx, http.MethodPost, u, bodyOrEmpty(body), nil, http.StatusAccepted, http.StatusOK)
	return err
}

// StatusJSON returns the status of instance id exactly as the API sent it
// (the JSON body), e.g. with ShowHistoryOutput for the export that package
// replaytest reads.
func (c *Client) StatusJSON(ctx context.Context, id string, opts ...StatusOption) ([]byte, error) {
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	r, err := c.call(ctx, http.MethodGet, c.endpoint(q, "instances", id), nil, nil, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	return r.body, nil
}
