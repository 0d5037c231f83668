package azurestorage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Large payloads are offloaded to the blob container {hub-lower}-largemessages
// the way Durable Task does it, so that its tools can read them:
//
//   - a queue message whose MessageData JSON exceeds 45 KiB is gzipped to
//     "{escaped instance ID}/message-{ActivityId, 32 hex}-{EventType}.json.gz"
//     and replaced in the queue by a wrapper MessageData that only carries
//     CompressedBlobName;
//   - a History column (offloadedColumns) above 60 KiB of UTF-16 is gzipped
//     to "{escaped instance ID}/history-{RowKey}-{EventType}-{8 random
//     hex}-{Column}.json.gz"; the row keeps "" in the column and the blob
//     name in {Column}BlobName;
//   - an Instances Input, Output or CustomStatus above 60 KiB is gzipped to
//     "{escaped instance ID}/history--{Column}-{8 random hex}-{Column}.json.gz"
//     and the column holds the blob's URL.
//
// Every blob of an instance therefore lives under "{escaped instance ID}/",
// which PurgeInstance deletes. Durable Task names message blobs after the
// unescaped instance ID; we use the escaped one (the same for IDs without
// ^ / \ # ? or control characters) so that an ID containing '/' cannot put
// blobs under another instance's prefix.

const (
	// maxQueuePayloadBytes is the largest MessageData JSON (UTF-8 bytes)
	// sent inline; larger messages go to a blob (Durable Task's
	// MaxStorageQueuePayloadSizeInBytes).
	maxQueuePayloadBytes = 45 * 1024
	// maxInlineUnits is the largest offloadable table value kept inline, in
	// UTF-16 code units: 60 KiB of UTF-16 (Durable Task's
	// MaxTablePropertySizeInBytes).
	maxInlineUnits = 60 * 1024 / 2
	// blobNameSuffix ends every large-payload blob name.
	blobNameSuffix = ".json.gz"
	// blobConcurrency bounds the parallel blob calls of one operation.
	blobConcurrency = 8
)

// offloadedColumns are the History columns that move to blobs when large
// (Durable Task's VariableSizeEntityProperties).
var offloadedColumns = []string{mName, mInput, mResult, colOutput, mReason, mDetails, mCorrelation, mFailureDetails, mTags}

// offloadedInstanceColumns are the Instances columns that hold a blob URL
// when large.
var offloadedInstanceColumns = []string{colInput, colOutput, colCustomStatus}

// Reasons a stored blob cannot serve its payload; together with
// ErrLargeMessage they make a queue message poison.
var (
	errBlobMissing = errors.New("blob not found")
	errBlobCorrupt = errors.New("blob content is not valid gzip")
)

// largeBlobs is the large-payload container of a hub.
type largeBlobs struct {
	name   string // container name
	client *container.Client
}

func newLargeBlobs(c conn, hub string, httpClient *http.Client) (*largeBlobs, error) {
	name := strings.ToLower(hub) + "-largemessages"
	client, err := c.container(name, httpClient)
	if err != nil {
		return nil, err
	}
	return &largeBlobs{name: name, client: client}, nil
}

// URL returns the address of blob name, each path segment escaped the way
// .NET's BlobClient.Uri shows it.
func (b *largeBlobs) URL(name string) string {
	segments := strings.Split(name, "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	return b.client.URL() + "/" + strings.Join(segments, "/")
}

// nameFromURL returns the blob name of a value that is the URL of a blob in
// this container (an offloaded Instances column), or false.
func (b *largeBlobs) nameFromURL(v string) (string, bool) {
	if !strings.HasSuffix(v, blobNameSuffix) || !(strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://")) {
		return "", false
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return "", false
	}
	path := u.EscapedPath()
	marker := "/" + b.name + "/"
	i := strings.Index(path, marker)
	if i < 0 {
		return "", false
	}
	name, err := url.PathUnescape(path[i+len(marker):])
	if err != nil || name == "" {
		return "", false
	}
	return name, true
}

// upload gzips data into blob name, creating the container when it is
// missing (no extra request otherwise).
func (b *largeBlobs) upload(ctx context.Context, name string, data []byte) error {
	compressed := gzipBytes(data)
	put := func() error {
		_, err := b.client.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(compressed)), nil)
		return err
	}
	err := put()
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if _, cerr := b.client.Create(ctx, nil); cerr != nil && !bloberror.HasCode(cerr, bloberror.ContainerAlreadyExists) {
			return fmt.Errorf("azurestorage: create container %s: %w", b.name, cerr)
		}
		err = put()
	}
	if err != nil {
		return fmt.Errorf("azurestorage: upload blob %s/%s: %w", b.name, name, err)
	}
	return nil
}

// download reads and gunzips blob name. A missing blob or container wraps
// errBlobMissing, content that is not gzip errBlobCorrupt; anything else
// may be transient.
func (b *largeBlobs) download(ctx context.Context, name string) (string, error) {
	resp, err := b.client.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			return "", fmt.Errorf("azurestorage: blob %s/%s: %w", b.name, name, errBlobMissing)
		}
		return "", fmt.Errorf("azurestorage: download blob %s/%s: %w", b.name, name, err)
	}
	defer resp.Body.Close()
	compressed, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("azurestorage: download blob %s/%s: %w", b.name, name, err)
	}
	text, err := gunzipText(compressed)
	if err != nil {
		return "", fmt.Errorf("azurestorage: blob %s/%s: %w: %v", b.name, name, errBlobCorrupt, err)
	}
	return text, nil
}

// deletePrefix deletes every blob whose name starts with prefix and returns
// how many there were. A missing container holds none.
func (b *largeBlobs) deletePrefix(ctx context.Context, prefix string) (int, error) {
	var names []string
	pager := b.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("azurestorage: list blobs %s/%s*: %w", b.name, prefix, err)
		}
		for _, item := range page.Segment.BlobItems {
			if item != nil && item.Name != nil && strings.HasPrefix(*item.Name, prefix) {
				names = append(names, *item.Name)
			}
		}
	}
	return len(names), b.deleteAll(ctx, names)
}

// deleteAll deletes the named blobs; missing ones are skipped.
func (b *largeBlobs) deleteAll(ctx context.Context, names []string) error {
	return forEachLimit(ctx, len(names), func(ctx context.Context, i int) error {
		_, err := b.client.NewBlobClient(names[i]).Delete(ctx, nil)
		if err != nil && !isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("azurestorage: delete blob %s/%s: %w", b.name, names[i], err)
		}
		return nil
	})
}

// deleteContainer removes the container and every blob in it.
func (b *largeBlobs) deleteContainer(ctx context.Context) error {
	if _, err := b.client.Delete(ctx, nil); err != nil && !isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("azurestorage: delete container %s: %w", b.name, err)
	}
	return nil
}

// forEachLimit runs f(0..n-1) with at most blobConcurrency at a time and
// returns the errors joined. One item runs on the calling goroutine.
func forEachLimit(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	if n == 1 {
		return f(ctx, 0)
	}
	errs := make([]error, n)
	sem := make(chan struct{}, blobConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(ctx, i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// messageBlobName names the blob of an offloaded queue message:
// "{escaped instance ID}/message-{ActivityId without dashes}-{EventType}.json.gz".
func messageBlobName(pk, activityID, eventType string) string {
	return pk + "/message-" + strings.ReplaceAll(activityID, "-", "") + "-" + eventType + blobNameSuffix
}

// historyBlobName names the blob of an offloaded table value:
// "{escaped instance ID}/history-{RowKey}-{EventType}-{8 random hex}-{Column}.json.gz".
// The random part keeps two writers racing on the same row (split brain)
// from overwriting each other's blobs.
func historyBlobName(pk, rk, eventType, column string) string {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("azurestorage: crypto/rand failed: " + err.Error())
	}
	return pk + "/history-" + rk + "-" + eventType + "-" + hex.EncodeToString(r[:]) + "-" + column + blobNameSuffix
}

// blobPrefix is the name prefix of every blob of the instance whose
// PartitionKey is pk. The trailing slash keeps instance "abc" from
// matching the blobs of "abcd".
func blobPrefix(pk string) string { return pk + "/" }

// exceedsInline reports whether a table value must move to a blob: more
// than maxInlineUnits UTF-16 code units. UTF-8 never has fewer bytes than
// UTF-16 has units, so short strings are decided without counting.
func exceedsInline(s string) bool {
	return len(s) > maxInlineUnits && utf16Len(s) > maxInlineUnits
}

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
	return w
}}

// gzipBytes compresses data as RFC 1952 gzip, as .NET's GZipStream does.
func gzipBytes(data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(data)/3 + 64)
	w := gzipWriters.Get().(*gzip.Writer)
	w.Reset(&b)
	_, _ = w.Write(data) // a bytes.Buffer does not fail
	_ = w.Close()
	gzipWriters.Put(w)
	return b.Bytes()
}

// gunzipText decompresses gzip data holding UTF-8 text.
func gunzipText(data []byte) (string, error) {
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(data) * 3)
	if _, err := io.Copy(&b, r); err != nil {
		return "", err
	}
	if err := r.Close(); err != nil {
		return "", err
	}
	return b.String(), nil
}
