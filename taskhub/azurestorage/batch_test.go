package azurestorage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/go-durable/durablefunctions/taskhub/backend"
)

func TestBuildBatch(t *testing.T) {
	rest := &tableREST{endpoint: "http://127.0.0.1:10002/devstoreaccount1"}
	row := &entity{pk: "it's/x", rk: "0000000000000000"}
	row.str("EventType", "OrchestratorStarted")
	put, err := newOp(opInsertReplace, row, "")
	if err != nil {
		t.Fatal(err)
	}
	sentinel := &entity{pk: "it's/x", rk: sentinelRowKey}
	sentinel.str(colExecutionID, "e1")
	merge, err := newOp(opMerge, sentinel, `W/"datetime'2024-01-01T00%3A00%3A00Z'"`)
	if err != nil {
		t.Fatal(err)
	}
	body, contentType, err := rest.buildBatch("hubHistory", []batchOp{put, merge, deleteOp("it's/x", "0000000000000001")})
	if err != nil {
		t.Fatal(err)
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "multipart/mixed" || !strings.HasPrefix(params["boundary"], "batch_") {
		t.Fatalf("content type %q", contentType)
	}
	outer := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	changeset, err := outer.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	_, csParams, _ := mime.ParseMediaType(changeset.Header.Get("Content-Type"))
	inner := multipart.NewReader(changeset, csParams["boundary"])
	var requests []string
	for {
		p, err := inner.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Type") != "application/http" {
			t.Errorf("part content type %q", p.Header.Get("Content-Type"))
		}
		data, _ := io.ReadAll(p)
		requests = append(requests, string(data))
	}
	if len(requests) != 3 {
		t.Fatalf("%d operations in the body, want 3:\n%s", len(requests), body)
	}
	wants := [][]string{
		{"PUT http://127.0.0.1:10002/devstoreaccount1/hubHistory(PartitionKey='it%27%27s%2Fx',RowKey='0000000000000000') HTTP/1.1\r\n",
			"Content-Type: application/json\r\n", `{"PartitionKey":"it's/x","RowKey":"0000000000000000","EventType":"OrchestratorStarted"}`},
		{"MERGE http://127.0.0.1:10002/devstoreaccount1/hubHistory(PartitionKey='it%27%27s%2Fx',RowKey='sentinel') HTTP/1.1\r\n",
			"If-Match: W/\"datetime'2024-01-01T00%3A00%3A00Z'\"\r\n"},
		{"DELETE http://127.0.0.1:10002/devstoreaccount1/hubHistory(PartitionKey='it%27%27s%2Fx',RowKey='0000000000000001') HTTP/1.1\r\n",
			"If-Match: *\r\n\r\n"},
	}
	for i, want := range wants {
		for _, w := range want {
			if !strings.Contains(requests[i], w) {
				t.Errorf("operation %d lacks %q:\n%s", i, w, requests[i])
			}
		}
	}
	for i, raw := range requests {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatalf("operation %d is not an HTTP request: %v\n%q", i, err, raw)
		}
		body, _ := io.ReadAll(req.Body)
		if int64(len(body)) != max(req.ContentLength, 0) {
			t.Errorf("operation %d: body of %d bytes, Content-Length %d", i, len(body), req.ContentLength)
		}
	}
	if strings.Contains(requests[0], "If-Match") {
		t.Errorf("insert-or-replace must be unconditional:\n%s", requests[0])
	}
}

func TestValidateBatch(t *testing.T) {
	op := func(pk, rk string) batchOp { return deleteOp(pk, rk) }
	many := func(n int) []batchOp {
		ops := make([]batchOp, n)
		for i := range ops {
			ops[i] = op("p", rowKey(i))
		}
		return ops
	}
	tests := []struct {
		name string
		ops  []batchOp
		want string
	}{
		{"100 operations", many(100), ""},
		{"101 operations", many(101), "1 to 100 operations"},
		{"empty", nil, "1 to 100 operations"},
		{"two partitions", []batchOp{op("a", "1"), op("b", "2")}, "one PartitionKey"},
		{"duplicate row", []batchOp{op("a", "1"), op("a", "1")}, "appears twice"},
		{"delete with body", []batchOp{{kind: opDelete, pk: "a", rk: "1", body: []byte("{}"), ifMatch: "*"}}, "wrong body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateBatch(tt.ops)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("validateBatch = %v, want %q", err, tt.want)
			}
		})
	}
}

// Transaction answers as Azurite 3.35.0 sends them.
const (
	okResponse = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n" +
		"--changesetresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nDataServiceVersion: 3.0;\r\n" +
		"ETag: W/\"datetime'2026-11-26T18%3A51%3A09.8055296Z'\"\r\n\r\n\r\n" +
		"--changesetresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nDataServiceVersion: 3.0;\r\n" +
		"Location: http://127.0.0.1:20002/devstoreaccount1/ExpHist(PartitionKey='it's',RowKey='sentinel')\r\n" +
		"ETag: W/\"datetime'2026-11-26T18%3A51%3A09.8055312Z'\"\r\n\r\n\r\n" +
		"--changesetresponse_1--\r\n--batchresponse_1--\r\n"
	failResponse = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n" +
		"--changesetresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
		"HTTP/1.1 %d %s\r\nContent-ID: 2\r\nDataServiceVersion: 3.0;\r\nContent-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n" +
		`{"odata.error":{"code":"%s","message":{"lang":"en-US","value":"1:%s\nRequestId:98514c1b\nTime:2026-11-26T18:51:09.817Z"}}}` + "\r\n" +
		"--changesetresponse_1--\r\n--batchresponse_1--\r\n"
)

func TestParseBatchResponse(t *testing.T) {
	got, err := parseBatchResponse("multipart/mixed; boundary=batchresponse_1", []byte(okResponse))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].err != nil || got[1].err != nil || got[1].status != http.StatusNoContent ||
		got[1].etag != `W/"datetime'2026-11-26T18%3A51%3A09.8055312Z'"` || got[0].etag != `W/"datetime'2026-11-26T18%3A51%3A09.8055296Z'"` {
		t.Fatalf("got %+v", got)
	}

	tests := []struct {
		status int
		text   string
		code   string
		msg    string
	}{
		{409, "Conflict", "EntityAlreadyExists", "The specified entity already exists."},
		{412, "Precondition Failed", "UpdateConditionNotSatisfied", "The update condition specified in the request was not satisfied."},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			body := fmt.Sprintf(failResponse, tt.status, tt.text, tt.code, tt.msg)
			got, err := parseBatchResponse("multipart/mixed; boundary=batchresponse_1", []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].err == nil {
				t.Fatalf("got %+v", got)
			}
			be := got[0].err
			if be.status != tt.status || be.code != tt.code || be.index != 1 || be.message != tt.msg {
				t.Fatalf("batch error %+v", be)
			}
		})
	}

	if _, err := parseBatchResponse("application/json", []byte(`{}`)); err == nil {
		t.Error("non-multipart response accepted")
	}
}

func TestHistoryWriteError(t *testing.T) {
	tests := []struct {
		err      error
		conflict bool
	}{
		{&batchError{index: 3, status: 409, code: "EntityAlreadyExists"}, true},
		{&batchError{index: 3, status: 412, code: "UpdateConditionNotSatisfied"}, true},
		{&batchError{index: 3, status: 404, code: "ResourceNotFound"}, true},
		{&batchError{index: 1, status: 404, code: "ResourceNotFound"}, false},
		{&batchError{index: 1, status: 400, code: "PropertyValueTooLarge"}, false},
		{errors.New("connection refused"), false},
	}
	for _, tt := range tests {
		err := historyWriteError("i", 0, 1, 3, tt.err)
		if got := errors.Is(err, backend.ErrConflict); got != tt.conflict {
			t.Errorf("historyWriteError(%v) = %v; conflict %v, want %v", tt.err, err, got, tt.conflict)
		}
	}
}

func TestSplitBatches(t *testing.T) {
	ops := func(n, bodySize int) []batchOp {
		out := make([]batchOp, n)
		for i := range out {
			out[i] = batchOp{kind: opInsertReplace, pk: "p", rk: rowKey(i), body: make([]byte, bodySize)}
		}
		return out
	}
	sizes := func(batches [][]batchOp) []int {
		var out []int
		for _, b := range batches {
			out = append(out, len(b))
		}
		return out
	}
	tests := []struct {
		name string
		ops  []batchOp
		want []int
	}{
		{"none: one sentinel-only transaction", nil, []int{0}},
		{"99 fit one transaction", ops(99, 100), []int{99}},
		{"150 need two", ops(150, 100), []int{99, 51}},
		{"large rows split by size", ops(60, 200*1024), []int{17, 17, 17, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches := splitBatches(tt.ops)
			if got := sizes(batches); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("batch sizes %v, want %v", got, tt.want)
			}
			for _, b := range batches {
				total := 2 * opOverhead
				for _, op := range b {
					total += len(op.body) + opOverhead
				}
				if total > maxBatchBodyBytes {
					t.Errorf("a transaction of %d bytes exceeds %d", total, maxBatchBodyBytes)
				}
			}
		})
	}
}
