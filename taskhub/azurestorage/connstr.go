package azurestorage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrBadConnectionString is wrapped by every error of ParseConnectionString.
var ErrBadConnectionString = errors.New("invalid storage connection string")

// Azurite's well-known development account, used for
// "UseDevelopmentStorage=true".
const (
	devAccountName = "devstoreaccount1"
	devAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Account is a storage account with shared-key credentials and the service
// endpoints to use (without trailing slash).
type Account struct {
	// Name is the storage account name, e.g. "devstoreaccount1".
	Name string
	// Key is the base64 account key.
	Key string
	// BlobEndpoint, QueueEndpoint and TableEndpoint are the service URLs,
	// e.g. "http://127.0.0.1:10001/devstoreaccount1" for Azurite's queues.
	BlobEndpoint, QueueEndpoint, TableEndpoint string
}

// ParseConnectionString parses an Azure Storage connection string in the
// AzureWebJobsStorage format: "UseDevelopmentStorage=true" (expanded to
// Azurite's well-known account on 127.0.0.1:10000..10002), an explicit string
// with AccountName, AccountKey and BlobEndpoint/QueueEndpoint/TableEndpoint,
// or AccountName, AccountKey and optional DefaultEndpointsProtocol and
// EndpointSuffix for Azure. Keys are case-insensitive. Shared access
// signatures are not supported.
func ParseConnectionString(s string) (Account, error) {
	fields := map[string]string{}
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			// The segment is not echoed: it might be a key.
			return Account{}, fmt.Errorf("%w: segment %d is not key=value", ErrBadConnectionString, i+1)
		}
		fields[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	if len(fields) == 0 {
		return Account{}, fmt.Errorf("%w: empty", ErrBadConnectionString)
	}
	if v, ok := fields["usedevelopmentstorage"]; ok {
		if !strings.EqualFold(v, "true") {
			return Account{}, fmt.Errorf("%w: UseDevelopmentStorage=%s (only true is supported)", ErrBadConnectionString, v)
		}
		if _, ok := fields["developmentstorageproxyuri"]; ok {
			return Account{}, fmt.Errorf("%w: DevelopmentStorageProxyUri is not supported", ErrBadConnectionString)
		}
		return Account{
			Name:          devAccountName,
			Key:           devAccountKey,
			BlobEndpoint:  "http://127.0.0.1:10000/" + devAccountName,
			QueueEndpoint: "http://127.0.0.1:10001/" + devAccountName,
			TableEndpoint: "http://127.0.0.1:10002/" + devAccountName,
		}, nil
	}
	if _, ok := fields["sharedaccesssignature"]; ok {
		return Account{}, fmt.Errorf("%w: SharedAccessSignature connection strings are not supported; use AccountName and AccountKey", ErrBadConnectionString)
	}
	a := Account{Name: fields["accountname"], Key: fields["accountkey"]}
	if a.Name == "" {
		return Account{}, fmt.Errorf("%w: AccountName is missing", ErrBadConnectionString)
	}
	if a.Key == "" {
		return Account{}, fmt.Errorf("%w: AccountKey is missing", ErrBadConnectionString)
	}
	if _, err := base64.StdEncoding.DecodeString(a.Key); err != nil {
		return Account{}, fmt.Errorf("%w: AccountKey is not base64", ErrBadConnectionString)
	}
	protocol := strings.ToLower(fields["defaultendpointsprotocol"])
	switch protocol {
	case "":
		protocol = "https"
	case "http", "https":
	default:
		return Account{}, fmt.Errorf("%w: DefaultEndpointsProtocol=%s (want http or https)", ErrBadConnectionString, protocol)
	}
	suffix := fields["endpointsuffix"]
	if suffix == "" {
		suffix = "core.windows.net"
	}
	endpoint := func(key, service string) (string, error) {
		v := fields[key]
		if v == "" {
			return fmt.Sprintf("%s://%s.%s.%s", protocol, a.Name, service, suffix), nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("%w: %s %q is not an http(s) URL", ErrBadConnectionString, key, v)
		}
		return strings.TrimRight(v, "/"), nil
	}
	var err error
	if a.BlobEndpoint, err = endpoint("blobendpoint", "blob"); err != nil {
		return Account{}, err
	}
	if a.QueueEndpoint, err = endpoint("queueendpoint", "queue"); err != nil {
		return Account{}, err
	}
	if a.TableEndpoint, err = endpoint("tableendpoint", "table"); err != nil {
		return Account{}, err
	}
	return a, nil
}
