package azurestorage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
)

// StorageScope is the token scope of Azure Storage (blob, queue and table),
// the one the SDK clients ask a TokenCredential for.
const StorageScope = "https://storage.azure.com/.default"

// ErrBadEndpoint is wrapped by every error of ValidateEndpoint.
var ErrBadEndpoint = errors.New("invalid storage service endpoint")

// Endpoints are the service URLs of a storage account reached with a token
// credential (Options.Credential), e.g. "https://acct.blob.core.windows.net"
// or, path-style for Azurite, "https://127.0.0.1:10000/devstoreaccount1".
type Endpoints struct {
	Blob, Queue, Table string
}

// PublicEndpoints returns the endpoints of account in the public Azure
// cloud: https://{account}.{blob|queue|table}.core.windows.net.
func PublicEndpoints(account string) Endpoints {
	e := func(service string) string {
		return "https://" + account + "." + service + ".core.windows.net"
	}
	return Endpoints{Blob: e("blob"), Queue: e("queue"), Table: e("table")}
}

// ValidateEndpoint checks that raw is an absolute https URL, or an http URL
// of a loopback host (an emulator or a test server), and returns it without
// a trailing slash. A bearer token must not travel in clear text elsewhere.
func ValidateEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("%w: %q is not an absolute URL", ErrBadEndpoint, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%w: %q has a query, fragment or user info; want the service URL only", ErrBadEndpoint, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("%w: %q uses http on a host that is not loopback; want https", ErrBadEndpoint, raw)
		}
	default:
		return "", fmt.Errorf("%w: %q has scheme %q; want https (or http for loopback)", ErrBadEndpoint, raw, u.Scheme)
	}
	return strings.TrimRight(raw, "/"), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// conn is how a Store reaches its account: endpoints with either a shared
// key (connection string) or a token credential.
type conn struct {
	ep        Endpoints
	name, key string // shared key; empty with cred
	cred      azcore.TokenCredential
	// metrics records every request (nil: not recorded).
	metrics *storageMetrics
}

func (c conn) clientOptions(service, endpoint string, httpClient *http.Client) azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport:        httpClient,
		PerRetryPolicies: c.metrics.policy(service),
		// azcore refuses bearer tokens over http; ValidateEndpoint only lets
		// http through for loopback hosts.
		InsecureAllowCredentialWithHTTP: c.cred != nil && strings.HasPrefix(endpoint, "http:"),
	}
}

func (c conn) tableService(httpClient *http.Client) (*aztables.ServiceClient, error) {
	opts := &aztables.ClientOptions{ClientOptions: c.clientOptions("table", c.ep.Table, httpClient)}
	if c.cred != nil && opts.InsecureAllowCredentialWithHTTP {
		// aztables.NewServiceClient builds its bearer policy without
		// options, so it refuses http even where azcore is told to allow
		// it; on a loopback http endpoint the same policy is added here.
		opts.PerRetryPolicies = append(opts.PerRetryPolicies, runtime.NewBearerTokenPolicy(c.cred, []string{StorageScope},
			&policy.BearerTokenOptions{InsecureAllowCredentialWithHTTP: true}))
		return aztables.NewServiceClientWithNoCredential(c.ep.Table, opts)
	}
	if c.cred != nil {
		return aztables.NewServiceClient(c.ep.Table, c.cred, opts)
	}
	cred, err := aztables.NewSharedKeyCredential(c.name, c.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConnectionString, err)
	}
	return aztables.NewServiceClientWithSharedKey(c.ep.Table, cred, opts)
}

func (c conn) queueService(httpClient *http.Client, perCall ...policy.Policy) (*azqueue.ServiceClient, error) {
	co := c.clientOptions("queue", c.ep.Queue, httpClient)
	co.PerCallPolicies = perCall
	opts := &azqueue.ClientOptions{ClientOptions: co}
	if c.cred != nil {
		return azqueue.NewServiceClient(c.ep.Queue, c.cred, opts)
	}
	cred, err := azqueue.NewSharedKeyCredential(c.name, c.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConnectionString, err)
	}
	return azqueue.NewServiceClientWithSharedKeyCredential(c.ep.Queue, cred, opts)
}

// container returns a client for blob container name.
func (c conn) container(name string, httpClient *http.Client) (*container.Client, error) {
	u := c.ep.Blob + "/" + name
	opts := &container.ClientOptions{ClientOptions: c.clientOptions("blob", u, httpClient)}
	var (
		client *container.Client
		err    error
	)
	if c.cred != nil {
		client, err = container.NewClient(u, c.cred, opts)
	} else {
		var cred *container.SharedKeyCredential
		if cred, err = container.NewSharedKeyCredential(c.name, c.key); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadConnectionString, err)
		}
		client, err = container.NewClientWithSharedKeyCredential(u, cred, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("azurestorage: blob client: %w", err)
	}
	return client, nil
}

// tableREST returns the raw Table pipeline, signed with SharedKeyLite or
// carrying the credential's bearer token.
func (c conn) tableREST(httpClient *http.Client) (*tableREST, error) {
	var auth policy.Policy
	if c.cred != nil {
		bearer := runtime.NewBearerTokenPolicy(c.cred, []string{StorageScope}, &policy.BearerTokenOptions{
			InsecureAllowCredentialWithHTTP: strings.HasPrefix(c.ep.Table, "http:"),
		})
		auth = dated{bearer}
	} else {
		key, err := base64.StdEncoding.DecodeString(c.key)
		if err != nil {
			return nil, fmt.Errorf("%w: AccountKey is not base64", ErrBadConnectionString)
		}
		auth = &sharedKeyLite{account: c.name, key: key}
	}
	pl := runtime.NewPipeline("azurestorage", "v0.1.0",
		runtime.PipelineOptions{PerRetry: []policy.Policy{auth}},
		&policy.ClientOptions{Transport: httpClient, PerRetryPolicies: c.metrics.policy("table")})
	return &tableREST{endpoint: c.ep.Table, pipeline: pl}, nil
}

// dated stamps x-ms-date, which storage wants on every authorised request
// (sharedKeyLite sets it itself, as it signs it), then runs next.
type dated struct{ next policy.Policy }

func (d dated) Do(req *policy.Request) (*http.Response, error) {
	req.Raw().Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	return d.next.Do(req)
}
