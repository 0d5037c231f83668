// Package rawstorage opens plain Azure SDK clients for a storage account
// named by a connection string, for code that looks at a task hub's
// queues and tables behind the engine's back: the invariant checker and
// tests.
package rawstorage

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/go-durable/durablefunctions/taskhub/azurestorage"
)

// Tables returns a table service client for the account, with shared-key
// authentication.
func Tables(connectionString string) (*aztables.ServiceClient, error) {
	acct, err := azurestorage.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	cred, err := aztables.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		return nil, fmt.Errorf("table credential: %w", err)
	}
	svc, err := aztables.NewServiceClientWithSharedKey(acct.TableEndpoint, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("table client: %w", err)
	}
	return svc, nil
}

// Queues returns a queue service client for the account, with shared-key
// authentication.
func Queues(connectionString string) (*azqueue.ServiceClient, error) {
	acct, err := azurestorage.ParseConnectionString(connectionString)
	if err != nil {
		return nil, err
	}
	cred, err := azqueue.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		return nil, fmt.Errorf("queue credential: %w", err)
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(acct.QueueEndpoint, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("queue client: %w", err)
	}
	return svc, nil
}
