// Package durablehttp is the built-in activity behind durable.CallHTTP
// (registered as durable.HTTPActivityName, "BuiltIn::HttpActivity"): it
// performs one HTTP request described by a durable.HTTPActivityRequest and
// returns the response as a durable.HTTPResponse. With a token source it
// first acquires a managed-identity token for the resource through
// azidentity's ManagedIdentityCredential (App Service's
// IDENTITY_ENDPOINT/IDENTITY_HEADER protocol, IMDS, and the other sources
// azidentity knows) and sends it as "Authorization: Bearer <token>".
//
// handler/funcapp registers the activity in every app; other hosts of the
// engine register Activity() (or New(opts).Definition()) themselves.
package durablehttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/go-durable/durablefunctions/taskhub/durable"
)

// Defaults of Options.
const (
	// DefaultRequestTimeout bounds a request that has no timeout of its
	// own (.NET HttpClient's default).
	DefaultRequestTimeout = 100 * time.Second
	// DefaultMaxResponseBytes is the largest response body accepted. The
	// response is recorded in the orchestration's history, so it should
	// stay small.
	DefaultMaxResponseBytes = 4 << 20
)

// Errors of a request, matched with errors.Is through *Error.
var (
	// ErrResponseTooLarge: the response body exceeds Options.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response body too large")
	// ErrResponseNotText: the response body is not UTF-8 text.
	ErrResponseNotText = errors.New("response body is not UTF-8 text")
	// ErrToken: the token for the request's token source could not be acquired.
	ErrToken = errors.New("cannot acquire the token")
)

// Options tunes the built-in activity; the zero value is ready to use.
type Options struct {
	// Client sends the requests (default: a client of its own on a clone of
	// http.DefaultTransport). Redirects are followed as Client does.
	Client *http.Client
	// RequestTimeout bounds each request that carries no timeout of its own
	// (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// MaxResponseBytes is the largest response body read (default
	// DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// Credential returns the credential for a managed identity: clientID
	// is a user-assigned identity's client ID, or "" for the
	// system-assigned one (default: azidentity.NewManagedIdentityCredential).
	Credential func(clientID string) (azcore.TokenCredential, error)
}

// Caller performs durable HTTP requests. It is safe for concurrent use.
type Caller struct {
	client      *http.Client
	timeout     time.Duration
	maxBody     int64
	credential  func(clientID string) (azcore.TokenCredential, error)
	mu          sync.Mutex
	credentials map[string]azcore.TokenCredential // by client ID
}

// New returns a Caller with opts.
func New(opts Options) *Caller {
	c := &Caller{client: opts.Client, timeout: opts.RequestTimeout, maxBody: opts.MaxResponseBytes,
		credential: opts.Credential, credentials: map[string]azcore.TokenCredential{}}
	if c.client == nil {
		c.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.credential == nil {
		c.credential = managedIdentity
	}
	return c
}

// Activity returns the built-in activity with default options, for
// registration: reg.Add(durablehttp.Activity()).
func Activity() *durable.Activity[durable.HTTPActivityRequest, durable.HTTPResponse] {
	return New(Options{}).Definition()
}

// Definition returns the activity durable.HTTPActivityName served by c.
func (c *Caller) Definition() *durable.Activity[durable.HTTPActivityRequest, durable.HTTPResponse] {
	return durable.NewActivity(durable.HTTPActivityName, c.Do)
}

// Error is the error of a request that could not be made or whose
// response could not be read.
type Error struct {
	Method string
	URL    string
	Err    error
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("durable HTTP %s %s: %v", e.Method, e.URL, e.Err) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorType implements the durable ErrorType convention (the name .NET
// gives the same failures).
func (e *Error) ErrorType() string { return "HttpRequestException" }

// Do performs req within ctx (the activity's context) and returns its
// response, whatever its status. An invalid request is an error matching
// durable.ErrInvalidHTTPRequest; a failure to connect, a timeout, a token
// that cannot be acquired, or a body that is too large or not text is an
// *Error.
func (c *Caller) Do(ctx context.Context, req durable.HTTPActivityRequest) (durable.HTTPResponse, error) {
	if err := req.Validate(); err != nil {
		return durable.HTTPResponse{}, err
	}
	fail := func(err error) (durable.HTTPResponse, error) {
		return durable.HTTPResponse{}, &Error{Method: req.Method, URL: req.URI, Err: err}
	}
	timeout, _ := req.TimeoutDuration() // valid: Validate checked it
	if timeout <= 0 {
		timeout = c.timeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("no response within %v", timeout))
	defer cancel()

	var body io.Reader
	if req.Content != "" {
		body = strings.NewReader(req.Content)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, req.URI, body)
	if err != nil {
		return fail(err)
	}
	for name, values := range req.Headers {
		switch {
		case strings.EqualFold(name, "Host"):
			if len(values) > 0 {
				hreq.Host = values[0]
			}
		case strings.EqualFold(name, "Content-Length"):
			// net/http sets it from the body.
		default:
			for _, v := range values {
				hreq.Header.Add(name, v)
			}
		}
	}
	if req.Content != "" && hreq.Header.Get("Content-Type") == "" {
		hreq.Header.Set("Content-Type", "text/plain") // as Durable Functions does
	}
	if ts := req.TokenSource; ts != nil {
		token, err := c.token(ctx, ts)
		if err != nil {
			return fail(err)
		}
		hreq.Header.Set("Authorization", "Bearer "+token)
	}

	resp, err := c.client.Do(hreq)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return fail(fmt.Errorf("%w (%w)", cause, err))
		}
		return fail(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return fail(fmt.Errorf("status %d, reading the body: %w", resp.StatusCode, err))
	}
	if int64(len(data)) > c.maxBody {
		return fail(fmt.Errorf("status %d: %w: more than %d bytes (the limit)", resp.StatusCode, ErrResponseTooLarge, c.maxBody))
	}
	if !utf8.Valid(data) {
		return fail(fmt.Errorf("status %d, Content-Type %q, %d bytes: %w; durable HTTP carries text bodies only",
			resp.StatusCode, resp.Header.Get("Content-Type"), len(data), ErrResponseNotText))
	}
	out := durable.HTTPResponse{StatusCode: resp.StatusCode, Body: string(data)}
	if len(resp.Header) > 0 {
		out.Headers = make(durable.HTTPHeaders, len(resp.Header))
		for k, v := range resp.Header {
			out.Headers[k] = v
		}
	}
	return out, nil
}

// token acquires a token for ts.
func (c *Caller) token(ctx context.Context, ts *durable.TokenSource) (string, error) {
	cred, err := c.credentialFor(ts.ClientID)
	if err != nil {
		return "", fmt.Errorf("%w for resource %q: %w", ErrToken, ts.Resource, err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{Scope(ts.Resource)}})
	if err != nil {
		return "", fmt.Errorf("%w for resource %q: %w", ErrToken, ts.Resource, err)
	}
	return tok.Token, nil
}

// credentialFor returns the (cached) credential of a managed identity.
func (c *Caller) credentialFor(clientID string) (azcore.TokenCredential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cred, ok := c.credentials[clientID]; ok {
		return cred, nil
	}
	cred, err := c.credential(clientID)
	if err != nil {
		return nil, err
	}
	c.credentials[clientID] = cred
	return cred, nil
}

// Scope returns the token scope of a resource: resource + "/.default"
// (the managed-identity endpoint is then asked for the resource itself).
func Scope(resource string) string {
	if strings.HasSuffix(resource, "/.default") {
		return resource
	}
	return resource + "/.default"
}

// managedIdentity is the default Options.Credential.
func managedIdentity(clientID string) (azcore.TokenCredential, error) {
	var o azidentity.ManagedIdentityCredentialOptions
	if clientID != "" {
		o.ID = azidentity.ClientID(clientID)
	}
	return azidentity.NewManagedIdentityCredential(&o)
}
