// Command durable-vet is a vet tool that reports non-deterministic code in
// Durable Functions orchestrators (see package durablecheck for the rules
// and the //durable:nondeterministic-ok escape hatch):
//
//	go install github.com/go-durable/durablefunctions/cmd/durable-vet
//	go vet -vettool=$(which durable-vet) ./...
//
// It also runs on its own: durable-vet ./...
package main

import (
	"github.com/go-durable/durablefunctions/taskhub/durable/durablecheck"
	"golang.org/x/tools/go/analysis/singlechecker"
)

func main() { singlechecker.Main(durablecheck.Analyzer) }
