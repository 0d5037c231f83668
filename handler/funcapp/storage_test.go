package funcapp

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

// loadStorageEnv runs LoadConfig under the Functions host (so only env
// counts) with the settings in m.
func loadStorageEnv(t *testing.T, m map[string]string) (Config, error) {
	t.Helper()
	env := map[string]string{envCustomHandlerPort: "5000"}
	for k, v := range m {
		env[k] = v
	}
	return LoadConfig([]string{"-root", t.TempDir()}, func(k string) string { return env[k] }, io.Discard)
}

func TestStorageIdentityConfig(t *testing.T) {
	const (
		blob  = "https://127.0.0.1:10000/devstoreaccount1"
		queue = "https://127.0.0.1:10001/devstoreaccount1"
		table = "http://127.0.0.1:10002/devstoreaccount1"
	)
	for _, tc := range []struct {
		name string
		env  map[string]string
		want StorageIdentity
	}{
		{
			name: "account name, default credential",
			env:  map[string]string{SettingStorageAccountName: "myacct01"},
			want: StorageIdentity{Endpoints: azurestorage.Endpoints{
				Blob:  "https://myacct01.blob.core.windows.net",
				Queue: "https://myacct01.queue.core.windows.net",
				Table: "https://myacct01.table.core.windows.net",
			}},
		},
		{
			name: "service URIs, system-assigned managed identity",
			env: map[string]string{SettingStorageBlobURI: blob + "/", SettingStorageQueueURI: queue, SettingStorageTableURI: table,
				SettingStorageCredential: "managedidentity"},
			want: StorageIdentity{Endpoints: azurestorage.Endpoints{Blob: blob, Queue: queue, Table: table}, ManagedIdentity: true},
		},
		{
			name: "account name, user-assigned managed identity",
			env: map[string]string{SettingStorageAccountName: "acct", SettingStorageCredential: "ManagedIdentity",
				SettingStorageClientID: " 11111111-2222-3333-4444-555555555555 "},
			want: StorageIdentity{Endpoints: azurestorage.PublicEndpoints("acct"), ManagedIdentity: true,
				ClientID: "11111111-2222-3333-4444-555555555555"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadStorageEnv(t, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Storage != "" {
				t.Errorf("Storage = %q, want empty", c.Storage)
			}
			if c.StorageIdentity == nil || *c.StorageIdentity != tc.want {
				t.Fatalf("StorageIdentity = %+v, want %+v", c.StorageIdentity, tc.want)
			}
		})
	}
}

func TestStorageConnectionStringStillWorks(t *testing.T) {
	c, err := loadStorageEnv(t, map[string]string{SettingStorage: "UseDevelopmentStorage=true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage != "UseDevelopmentStorage=true" || c.StorageIdentity != nil {
		t.Fatalf("Storage = %q, StorageIdentity = %+v", c.Storage, c.StorageIdentity)
	}
}

// TestStorageIdentityFromLocalSettings: standalone, the identity settings
// come from local.settings.json like every other setting.
func TestStorageIdentityFromLocalSettings(t *testing.T) {
	root := t.TempDir()
	local := `{"Values":{"AzureWebJobsStorage__accountName":"localacct"}}`
	if err := os.WriteFile(filepath.Join(root, localSettingsFile), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig([]string{"-root", root}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.StorageIdentity == nil || c.StorageIdentity.Endpoints != azurestorage.PublicEndpoints("localacct") {
		t.Fatalf("StorageIdentity = %+v", c.StorageIdentity)
	}
}

func TestStorageConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		setting string // the SettingError's Setting
		want    string // in the message
		cause   error  // wrapped, when not nil
	}{
		{
			name:    "nothing set",
			setting: SettingStorage,
			want:    "AzureWebJobsStorage is empty",
		},
		{
			name:    "connection string and account name",
			env:     map[string]string{SettingStorage: "UseDevelopmentStorage=true", SettingStorageAccountName: "acct"},
			setting: SettingStorageAccountName,
			want:    "set together with the connection string AzureWebJobsStorage",
		},
		{
			name:    "connection string and credential",
			env:     map[string]string{SettingStorage: "UseDevelopmentStorage=true", SettingStorageCredential: "managedidentity"},
			setting: SettingStorageCredential,
			want:    "not both",
		},
		{
			name:    "one service URI missing",
			env:     map[string]string{SettingStorageBlobURI: "https://a.blob.core.windows.net", SettingStorageTableURI: "https://a.table.core.windows.net"},
			setting: SettingStorageQueueURI,
			want:    "missing: AzureWebJobsStorage__queueServiceUri",
		},
		{
			name:    "account name and service URIs",
			env:     map[string]string{SettingStorageAccountName: "acct", SettingStorageBlobURI: "https://a.blob.core.windows.net"},
			setting: SettingStorageAccountName,
			want:    "set together with AzureWebJobsStorage__blobServiceUri",
		},
		{
			name: "endpoint not a URL",
			env: map[string]string{SettingStorageBlobURI: "a.blob.core.windows.net", SettingStorageQueueURI: "https://a.queue.core.windows.net",
				SettingStorageTableURI: "https://a.table.core.windows.net"},
			setting: SettingStorageBlobURI,
			want:    `"a.blob.core.windows.net" is not an absolute URL`,
			cause:   azurestorage.ErrBadEndpoint,
		},
		{
			name: "http endpoint off loopback",
			env: map[string]string{SettingStorageBlobURI: "https://a.blob.core.windows.net", SettingStorageQueueURI: "https://a.queue.core.windows.net",
				SettingStorageTableURI: "http://a.table.core.windows.net"},
			setting: SettingStorageTableURI,
			want:    "not loopback; want https",
			cause:   azurestorage.ErrBadEndpoint,
		},
		{
			name:    "bad account name",
			env:     map[string]string{SettingStorageAccountName: "My_Account"},
			setting: SettingStorageAccountName,
			want:    `"My_Account" is not a storage account name`,
		},
		{
			name:    "unknown credential",
			env:     map[string]string{SettingStorageAccountName: "acct", SettingStorageCredential: "workloadidentity"},
			setting: SettingStorageCredential,
			want:    `"workloadidentity" is not supported`,
		},
		{
			name:    "client ID without managed identity",
			env:     map[string]string{SettingStorageAccountName: "acct", SettingStorageClientID: "abc"},
			setting: SettingStorageClientID,
			want:    "needs AzureWebJobsStorage__credential=managedidentity",
		},
		{
			name:    "credential but no account",
			env:     map[string]string{SettingStorageCredential: "managedidentity"},
			setting: SettingStorageAccountName,
			want:    "no account",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadStorageEnv(t, tc.env)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "setting "+tc.setting+" ") {
				t.Errorf("error %q: want it to name setting %s and say %q", err, tc.setting, tc.want)
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Setting != tc.setting {
				t.Errorf("error %v: want a *SettingError for %s, got %+v", err, tc.setting, se)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("error %v does not wrap %v", err, tc.cause)
			}
		})
	}
}

// TestStorageIdentityCredential: the settings pick the azidentity
// credential type (building one makes no network call).
func TestStorageIdentityCredential(t *testing.T) {
	for _, tc := range []struct {
		id      StorageIdentity
		managed bool
	}{
		{StorageIdentity{}, false},
		{StorageIdentity{ManagedIdentity: true}, true},
		{StorageIdentity{ManagedIdentity: true, ClientID: "11111111-2222-3333-4444-555555555555"}, true},
	} {
		cred, err := tc.id.Credential()
		if err != nil {
			t.Fatalf("%+v: %v", tc.id, err)
		}
		_, isMI := cred.(*azidentity.ManagedIdentityCredential)
		_, isDefault := cred.(*azidentity.DefaultAzureCredential)
		if isMI != tc.managed || isDefault == tc.managed {
			t.Errorf("%+v: credential %T, want managed identity = %v", tc.id, cred, tc.managed)
		}
	}
}
