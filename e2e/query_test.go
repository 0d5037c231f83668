package e2e

import "github.com/go-durable/durablefunctions/taskhub/backend"

func backendQueryAll() backend.InstanceQuery { return backend.InstanceQuery{PageSize: 100} }
