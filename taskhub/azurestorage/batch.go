package azurestorage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
)

// This file sends entity group transactions itself instead of through
// aztables.Client.SubmitTransaction, because the SDK (v1.4.1)
//   - returns no per-operation ETags, although the service sends them;
//   - reports a failed transaction as a 202 error with the inner status only
//     in its text;
//   - puts keys into the operation URLs without doubling single quotes, so an
//     instance ID containing ' gives an invalid OData key (Azurite happens
//     to accept it);
//   - rejects an empty PartitionKey, which the Partitions table uses.

// batchKind is the operation type of one transaction operation.
type batchKind int

const (
	opInsert        batchKind = iota // POST: fails with 409 if the row exists
	opInsertReplace                  // PUT without If-Match: upsert
	opMerge                          // MERGE with If-Match
	opReplace                        // PUT with If-Match
	opDelete                         // DELETE with If-Match
)

// batchOp is one operation of an entity group transaction.
type batchOp struct {
	kind    batchKind
	pk, rk  string
	body    []byte // the entity JSON; nil for opDelete
	ifMatch string // opMerge, opReplace, opDelete; "*" matches any ETag
}

// newOp validates and renders e as an operation of kind.
func newOp(kind batchKind, e *entity, ifMatch string) (batchOp, error) {
	body, err := e.marshal()
	if err != nil {
		return batchOp{}, err
	}
	return batchOp{kind: kind, pk: e.pk, rk: e.rk, body: body, ifMatch: ifMatch}, nil
}

// deleteOp deletes the row (pk, rk) whatever its ETag.
func deleteOp(pk, rk string) batchOp {
	return batchOp{kind: opDelete, pk: pk, rk: rk, ifMatch: "*"}
}

// opOverhead estimates the bytes an operation adds to a transaction body
// besides its entity JSON (part headers, request line, URL).
const opOverhead = 1024

// batchResponse is the outcome of one operation of a committed transaction.
type batchResponse struct {
	status int
	etag   string
}

// batchError is a transaction that the service rejected as a whole because
// one operation failed.
type batchError struct {
	index   int // failing operation, -1 when the service did not say
	status  int
	code    string
	message string
}

func (e *batchError) Error() string {
	return fmt.Sprintf("entity group transaction failed at operation %d: HTTP %d %s: %s", e.index, e.status, e.code, e.message)
}

// tableREST sends raw Table service requests through an azcore pipeline
// (retries, the configured transport) signed with SharedKeyLite.
type tableREST struct {
	endpoint string // table service endpoint without trailing slash
	pipeline runtime.Pipeline
}

// sharedKeyLite signs Table service requests (the Shared Key Lite scheme
// for tables: date and canonicalized resource).
type sharedKeyLite struct {
	account string
	key     []byte
}

func (s *sharedKeyLite) Do(req *policy.Request) (*http.Response, error) {
	date := time.Now().UTC().Format(http.TimeFormat)
	req.Raw().Header.Set("x-ms-date", date)
	resource := "/" + s.account + req.Raw().URL.EscapedPath()
	if comp := req.Raw().URL.Query().Get("comp"); comp != "" {
		resource += "?comp=" + comp
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(date + "\n" + resource))
	req.Raw().Header.Set("Authorization", "SharedKeyLite "+s.account+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return req.Next()
}

// entityURL addresses one entity of table.
func (t *tableREST) entityURL(table, pk, rk string) string {
	quote := func(k string) string { return url.PathEscape(strings.ReplaceAll(k, "'", "''")) }
	return t.endpoint + "/" + table + "(PartitionKey='" + quote(pk) + "',RowKey='" + quote(rk) + "')"
}

// validateBatch enforces the transaction rules that Azurite does not: at most
// 100 operations, one PartitionKey, no RowKey twice.
func validateBatch(ops []batchOp) error {
	if len(ops) == 0 || len(ops) > maxBatchOperations {
		return fmt.Errorf("azurestorage: a transaction needs 1 to %d operations, got %d", maxBatchOperations, len(ops))
	}
	pk := ops[0].pk
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if op.pk != pk {
			return fmt.Errorf("azurestorage: a transaction must use one PartitionKey, got %q and %q", pk, op.pk)
		}
		if seen[op.rk] {
			return fmt.Errorf("azurestorage: RowKey %q appears twice in one transaction", op.rk)
		}
		seen[op.rk] = true
		if (op.kind == opDelete) != (op.body == nil) {
			return fmt.Errorf("azurestorage: transaction operation on RowKey %q has a wrong body", op.rk)
		}
	}
	return nil
}

// buildBatch renders the multipart body of a transaction and returns it with
// its content type.
func (t *tableREST) buildBatch(table string, ops []batchOp) ([]byte, string, error) {
	if err := validateBatch(ops); err != nil {
		return nil, "", err
	}
	batchBoundary := "batch_" + newGUID()
	changesetBoundary := "changeset_" + newGUID()
	var b bytes.Buffer
	fmt.Fprintf(&b, "--%s\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", batchBoundary, changesetBoundary)
	for i, op := range ops {
		var method, target string
		switch op.kind {
		case opInsert:
			method, target = http.MethodPost, t.endpoint+"/"+table
		case opInsertReplace, opReplace:
			method, target = http.MethodPut, t.entityURL(table, op.pk, op.rk)
		case opMerge:
			method, target = "MERGE", t.entityURL(table, op.pk, op.rk)
		case opDelete:
			method, target = http.MethodDelete, t.entityURL(table, op.pk, op.rk)
		}
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n", changesetBoundary)
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nAccept: application/json;odata=minimalmetadata\r\nDataServiceVersion: 3.0\r\nContent-ID: %d\r\n", method, target, i+1)
		switch op.kind {
		case opInsert:
			b.WriteString("Prefer: return-no-content\r\n")
		case opMerge, opReplace, opDelete:
			if op.ifMatch == "" {
				return nil, "", errors.New("azurestorage: conditional transaction operation without ETag")
			}
			fmt.Fprintf(&b, "If-Match: %s\r\n", op.ifMatch)
		}
		if op.body != nil {
			fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(op.body))
		}
		b.WriteString("\r\n") // end of the headers
		b.Write(op.body)
		b.WriteString("\r\n") // belongs to the next delimiter
	}
	fmt.Fprintf(&b, "--%s--\r\n--%s--\r\n", changesetBoundary, batchBoundary)
	return b.Bytes(), "multipart/mixed; boundary=" + batchBoundary, nil
}

// submitBatch commits ops atomically in table and returns one response per
// operation, in order. A rejected transaction returns a *batchError.
func (t *tableREST) submitBatch(ctx context.Context, table string, ops []batchOp) ([]batchResponse, error) {
	body, contentType, err := t.buildBatch(table, ops)
	if err != nil {
		return nil, err
	}
	if len(body) > 4*1024*1024 {
		return nil, fmt.Errorf("azurestorage: transaction body of %d bytes exceeds the 4 MiB limit: %w", len(body), ErrPayloadTooLarge)
	}
	req, err := runtime.NewRequest(ctx, http.MethodPost, t.endpoint+"/$batch")
	if err != nil {
		return nil, fmt.Errorf("azurestorage: %w", err)
	}
	h := req.Raw().Header
	h.Set("x-ms-version", "2019-02-02")
	h.Set("DataServiceVersion", "3.0")
	h.Set("MaxDataServiceVersion", "3.0;NetFx")
	h.Set("Accept", "application/json;odata=minimalmetadata")
	if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)), contentType); err != nil {
		return nil, fmt.Errorf("azurestorage: %w", err)
	}
	resp, err := t.pipeline.Do(req)
	if err != nil {
		return nil, fmt.Errorf("azurestorage: transaction on %s: %w", table, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("azurestorage: transaction on %s: read response: %w", table, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		code, msg := parseODataError(raw)
		return nil, &batchError{index: -1, status: resp.StatusCode, code: code, message: msg}
	}
	responses, err := parseBatchResponse(resp.Header.Get("Content-Type"), raw)
	if err != nil {
		return nil, fmt.Errorf("azurestorage: transaction on %s: %w", table, err)
	}
	for i, r := range responses {
		if r.err != nil {
			if r.err.index < 0 && len(responses) == len(ops) {
				r.err.index = i
			}
			return nil, r.err
		}
	}
	out := make([]batchResponse, len(responses))
	for i, r := range responses {
		out[i] = r.batchResponse
	}
	if len(out) != len(ops) {
		return out, fmt.Errorf("azurestorage: transaction on %s: %d responses for %d operations", table, len(out), len(ops))
	}
	return out, nil
}

// innerResponse is one parsed operation response.
type innerResponse struct {
	batchResponse
	err *batchError
}

// parseBatchResponse reads the multipart answer of a transaction.
func parseBatchResponse(contentType string, raw []byte) ([]innerResponse, error) {
	boundary, err := multipartBoundary(contentType)
	if err != nil {
		return nil, err
	}
	outer := multipart.NewReader(bytes.NewReader(raw), boundary)
	part, err := outer.NextPart()
	if err != nil {
		return nil, fmt.Errorf("malformed batch response: %w", err)
	}
	var out []innerResponse
	if inner, err := multipartBoundary(part.Header.Get("Content-Type")); err == nil {
		cs := multipart.NewReader(part, inner)
		for {
			p, err := cs.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("malformed changeset response: %w", err)
			}
			r, err := parseInnerResponse(p)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
	// A failure may come back as a single response without a changeset.
	r, err := parseInnerResponse(part)
	if err != nil {
		return nil, err
	}
	return append(out, r), nil
}

func multipartBoundary(contentType string) (string, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") || params["boundary"] == "" {
		return "", fmt.Errorf("batch response has content type %q, want multipart", contentType)
	}
	return params["boundary"], nil
}

func parseInnerResponse(r io.Reader) (innerResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(r), nil)
	if err != nil {
		return innerResponse{}, fmt.Errorf("malformed operation response: %w", err)
	}
	defer resp.Body.Close()
	out := innerResponse{batchResponse: batchResponse{status: resp.StatusCode, etag: resp.Header.Get("ETag")}}
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
		code, msg := parseODataError(body)
		index := -1
		// The message starts with "<index>:" of the failing operation.
		if n, rest, ok := strings.Cut(msg, ":"); ok {
			if i, err := strconv.Atoi(n); err == nil {
				index, msg = i, rest
			}
		}
		if first, _, ok := strings.Cut(msg, "\n"); ok {
			msg = first
		}
		out.err = &batchError{index: index, status: resp.StatusCode, code: code, message: msg}
	}
	return out, nil
}

// parseODataError extracts code and message of a Table service JSON error.
func parseODataError(body []byte) (code, message string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message struct {
				Value string `json:"value"`
			} `json:"message"`
		} `json:"odata.error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return e.Error.Code, e.Error.Message.Value
	}
	text := strings.TrimSpace(string(body))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	return "", text
}
