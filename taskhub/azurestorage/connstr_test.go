package azurestorage

import (
	"errors"
	"strings"
	"testing"
)

func TestParseConnectionString(t *testing.T) {
	const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	tests := []struct {
		name string
		cs   string
		want Account
	}{
		{"development storage", "UseDevelopmentStorage=true", Account{
			Name: "devstoreaccount1", Key: key,
			BlobEndpoint:  "http://127.0.0.1:10000/devstoreaccount1",
			QueueEndpoint: "http://127.0.0.1:10001/devstoreaccount1",
			TableEndpoint: "http://127.0.0.1:10002/devstoreaccount1",
		}},
		{"development storage, other case and spaces", " usedevelopmentstorage = True ; ", Account{
			Name: "devstoreaccount1", Key: key,
			BlobEndpoint:  "http://127.0.0.1:10000/devstoreaccount1",
			QueueEndpoint: "http://127.0.0.1:10001/devstoreaccount1",
			TableEndpoint: "http://127.0.0.1:10002/devstoreaccount1",
		}},
		{"explicit Azurite with custom ports",
			"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + key +
				";BlobEndpoint=http://127.0.0.1:41000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:41001/devstoreaccount1/;TableEndpoint=http://localhost:41002/devstoreaccount1;",
			Account{Name: "devstoreaccount1", Key: key,
				BlobEndpoint:  "http://127.0.0.1:41000/devstoreaccount1",
				QueueEndpoint: "http://127.0.0.1:41001/devstoreaccount1",
				TableEndpoint: "http://localhost:41002/devstoreaccount1",
			}},
		{"Azure account with suffix",
			"DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" + key + ";EndpointSuffix=core.chinacloudapi.cn",
			Account{Name: "myacct", Key: key,
				BlobEndpoint:  "https://myacct.blob.core.chinacloudapi.cn",
				QueueEndpoint: "https://myacct.queue.core.chinacloudapi.cn",
				TableEndpoint: "https://myacct.table.core.chinacloudapi.cn",
			}},
		{"Azure account, defaults", "AccountName=myacct;AccountKey=" + key,
			Account{Name: "myacct", Key: key,
				BlobEndpoint:  "https://myacct.blob.core.windows.net",
				QueueEndpoint: "https://myacct.queue.core.windows.net",
				TableEndpoint: "https://myacct.table.core.windows.net",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.cs)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	tests := []struct {
		name, cs, want string
	}{
		{"empty", "", "empty"},
		{"only separators", ";;", "empty"},
		{"no key=value", "AccountName=a;garbage", "segment 2 is not key=value"},
		{"dev storage false", "UseDevelopmentStorage=false", "only true"},
		{"dev storage proxy", "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://x", "not supported"},
		{"missing account", "AccountKey=abcd", "AccountName is missing"},
		{"missing key", "AccountName=a", "AccountKey is missing"},
		{"key not base64", "AccountName=a;AccountKey=not base64!", "not base64"},
		{"SAS", "QueueEndpoint=https://x;SharedAccessSignature=sv=1", "SharedAccessSignature"},
		{"bad protocol", "AccountName=a;AccountKey=abcd;DefaultEndpointsProtocol=ftp", "DefaultEndpointsProtocol"},
		{"bad endpoint", "AccountName=a;AccountKey=abcd;TableEndpoint=127.0.0.1:10002", "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConnectionString(tt.cs)
			if err == nil {
				t.Fatalf("no error for %q", tt.cs)
			}
			if !errors.Is(err, ErrBadConnectionString) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want one wrapping ErrBadConnectionString and mentioning %q", err, tt.want)
			}
		})
	}
}

func TestParseConnectionStringDoesNotEchoKeys(t *testing.T) {
	_, err := ParseConnectionString("AccountName=a;SECRETKEYMATERIAL")
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error %v must not echo the segment", err)
	}
}
