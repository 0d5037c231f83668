package funcapp

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

// Identity-based storage settings, named as the Functions host and Durable
// Functions name them (the connection "AzureWebJobsStorage" with
// "__"-separated properties).
const (
	SettingStorageAccountName = SettingStorage + "__accountName"
	SettingStorageBlobURI     = SettingStorage + "__blobServiceUri"
	SettingStorageQueueURI    = SettingStorage + "__queueServiceUri"
	SettingStorageTableURI    = SettingStorage + "__tableServiceUri"
	SettingStorageCredential  = SettingStorage + "__credential"
	SettingStorageClientID    = SettingStorage + "__clientId"
)

// credentialManagedIdentity is the one value of SettingStorageCredential.
const credentialManagedIdentity = "managedidentity"

// identitySettings are every AzureWebJobsStorage__* setting read; any of
// them next to a connection string is a mix.
var identitySettings = []string{
	SettingStorageAccountName, SettingStorageBlobURI, SettingStorageQueueURI,
	SettingStorageTableURI, SettingStorageCredential, SettingStorageClientID,
}

// SettingError reports a setting that cannot be used; Setting names it
// and Reason, which follows the name in the message, says what is wrong.
type SettingError struct {
	Setting string
	Reason  string
	Err     error // the underlying cause, if any
}

func (e *SettingError) Error() string {
	msg := "setting " + e.Setting + " " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *SettingError) Unwrap() error { return e.Err }

// StorageIdentity is an identity-based connection to the storage account:
// the service endpoints and which Microsoft Entra credential to use.
type StorageIdentity struct {
	Endpoints azurestorage.Endpoints
	// ManagedIdentity selects azidentity's ManagedIdentityCredential
	// (AzureWebJobsStorage__credential=managedidentity); otherwise the
	// DefaultAzureCredential chain (environment, workload identity, managed
	// identity, Azure CLI ...).
	ManagedIdentity bool
	// ClientID is the client ID of a user-assigned managed identity; empty
	// for the system-assigned one.
	ClientID string
}

// Credential builds the credential the settings ask for. It makes no
// network calls; a token is first requested by the first storage call.
func (id StorageIdentity) Credential() (azcore.TokenCredential, error) {
	if id.ManagedIdentity {
		var opts azidentity.ManagedIdentityCredentialOptions
		if id.ClientID != "" {
			opts.ID = azidentity.ClientID(id.ClientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(&opts)
		if err != nil {
			return nil, fmt.Errorf("storage managed identity credential: %w", err)
		}
		return cred, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("storage default Azure credential: %w", err)
	}
	return cred, nil
}

// loadStorage resolves the storage connection: the connection string
// AzureWebJobsStorage, or the identity-based AzureWebJobsStorage__*
// settings; never both.
func (cfg *Config) loadStorage(get func(string) string) error {
	val := func(k string) string { return strings.TrimSpace(get(k)) }
	cfg.Storage = get(SettingStorage)
	var set []string
	for _, k := range identitySettings {
		if val(k) != "" {
			set = append(set, k)
		}
	}
	if cfg.Storage != "" {
		if len(set) > 0 {
			return &SettingError{Setting: set[0], Reason: fmt.Sprintf("is set together with the connection string %s; use either the connection string or the identity settings (%s), not both", SettingStorage, strings.Join(set, ", "))}
		}
		return nil
	}
	if len(set) == 0 {
		return &SettingError{Setting: SettingStorage, Reason: fmt.Sprintf("is empty: set it to a storage connection string, or %q for Azurite; or, for an identity-based connection, set %s or the three %s, %s and %s",
			developmentStorageShortcut, SettingStorageAccountName, SettingStorageBlobURI, SettingStorageQueueURI, SettingStorageTableURI)}
	}
	var errs []error
	id := &StorageIdentity{}
	account := val(SettingStorageAccountName)
	uris := []struct {
		setting string
		dst     *string
	}{
		{SettingStorageBlobURI, &id.Endpoints.Blob},
		{SettingStorageQueueURI, &id.Endpoints.Queue},
		{SettingStorageTableURI, &id.Endpoints.Table},
	}
	var given, missing []string
	for _, u := range uris {
		if v := val(u.setting); v != "" {
			given = append(given, u.setting)
			ep, err := azurestorage.ValidateEndpoint(v)
			if err != nil {
				errs = append(errs, &SettingError{Setting: u.setting, Reason: "is not a usable service URL (want an absolute https URL, or http for a loopback host)", Err: err})
				continue
			}
			*u.dst = ep
		} else {
			missing = append(missing, u.setting)
		}
	}
	switch {
	case account != "" && len(given) > 0:
		errs = append(errs, &SettingError{Setting: SettingStorageAccountName, Reason: fmt.Sprintf("is set together with %s; use either the account name or the three service URIs", strings.Join(given, ", "))})
	case account != "":
		if !validAccountName(account) {
			errs = append(errs, &SettingError{Setting: SettingStorageAccountName, Reason: fmt.Sprintf("=%q is not a storage account name (3 to 24 lower-case letters and digits)", account)})
		} else {
			id.Endpoints = azurestorage.PublicEndpoints(account)
		}
	case len(given) > 0 && len(missing) > 0:
		errs = append(errs, &SettingError{Setting: missing[0], Reason: fmt.Sprintf("is missing: %s is set, and identity-based storage needs all three service URIs (missing: %s)", strings.Join(given, ", "), strings.Join(missing, ", "))})
	case len(given) == 0:
		errs = append(errs, &SettingError{Setting: SettingStorageAccountName, Reason: fmt.Sprintf("is empty: %s is set, but no account: set %s, or %s, %s and %s",
			strings.Join(set, ", "), SettingStorageAccountName, SettingStorageBlobURI, SettingStorageQueueURI, SettingStorageTableURI)})
	}
	switch c := val(SettingStorageCredential); {
	case c == "":
	case strings.EqualFold(c, credentialManagedIdentity):
		id.ManagedIdentity = true
	default:
		errs = append(errs, &SettingError{Setting: SettingStorageCredential, Reason: fmt.Sprintf("=%q is not supported; want %q, or leave it unset for the default Azure credential chain", c, credentialManagedIdentity)})
	}
	id.ClientID = val(SettingStorageClientID)
	if id.ClientID != "" && !id.ManagedIdentity {
		errs = append(errs, &SettingError{Setting: SettingStorageClientID, Reason: fmt.Sprintf("is set but needs %s=%s (a user-assigned managed identity); the default credential chain takes its client ID from AZURE_CLIENT_ID", SettingStorageCredential, credentialManagedIdentity)})
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cfg.StorageIdentity = id
	return nil
}

// validAccountName reports whether s is a storage account name: 3..24
// lower-case letters and digits.
func validAccountName(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
