package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-durable/durablefunctions/cmd/durable/internal/render"
	"github.com/go-durable/durablefunctions/handler/durableapi/apiclient"
	"github.com/go-durable/durablefunctions/taskhub/client"
	"github.com/go-durable/durablefunctions/taskhub/history"
)

// entityCommands are the subcommands of "durable entity".
var entityCommands []*command

func init() {
	entityCommands = []*command{
		{"entity list", "[NAME] [--state] [--top N | --all]", "list entities (of one name), with their state with --state", runEntityList},
		{"entity get", "NAME KEY", "print an entity's state", runEntityGet},
		{"entity signal", "NAME KEY OPERATION [--input JSON]", "signal an operation to an entity (one way)", runEntitySignal},
		{"entity clean", "[--remove-empty] [--release-orphaned-locks] [--empty-for D]", "clean entity storage (storage mode only)", runEntityClean},
	}
}

func runEntity(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		if len(args) == 0 {
			return usagef("missing subcommand: list, get, signal or clean (see 'durable entity --help')")
		}
		var b strings.Builder
		b.WriteString("Usage: durable entity SUBCOMMAND\n\n")
		for _, c := range entityCommands {
			fmt.Fprintf(&b, "  durable %s %s\n      %s\n", c.name, c.args, c.summary)
		}
		fmt.Fprint(e.stdout, b.String())
		return errHelpShown
	}
	for _, c := range entityCommands {
		if c.name == "entity "+args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return usagef("unknown entity subcommand %q (want list, get, signal or clean)", args[0])
}

func entityCommand(name string) *command {
	for _, c := range entityCommands {
		if c.name == name {
			return c
		}
	}
	panic("no entity command " + name)
}

// entityJSON is an entity as the API's entity list renders it.
type entityJSON struct {
	EntityID struct {
		Name string `json:"name"`
		Key  string `json:"key"`
	} `json:"entityId"`
	LastOperationTime string          `json:"lastOperationTime"`
	State             json.RawMessage `json:"state,omitempty"`
}

func runEntityList(ctx context.Context, e *env, args []string) error {
	c := entityCommand("entity list")
	fs := e.flagSet(c.name)
	withState := fs.Bool("state", false, "include each entity's state")
	top := fs.Int("top", 100, "show at most this many entities")
	all := fs.Bool("all", false, "show every entity, page after page")
	pos, err := e.parse(fs, c, args, 0, 1)
	if err != nil {
		return err
	}
	if *top <= 0 {
		return usagef("--top %d: want a positive number", *top)
	}
	f := apiclient.EntityFilter{WithState: *withState, PageSize: min(*top, 1000)}
	if len(pos) == 1 {
		f.Name = pos[0]
	}
	cn, err := e.connect(ctx)
	if err != nil {
		return err
	}
	var list []apiclient.Entity
	token := ""
	for {
		page, next, err := cn.api.ListEntitiesPage(ctx, f, token)
		if err != nil {
			return err
		}
		list = append(list, page...)
		if next == "" || next == token || (!*all && len(list) >= *top) {
			break
		}
		token = next
	}
	if !*all && len(list) > *top {
		list = list[:*top]
	}
	if e.g.json {
		out := make([]entityJSON, len(list))
		for i, en := range list {
			out[i].EntityID.Name, out[i].EntityID.Key = en.Name, en.Key
			out[i].LastOperationTime = en.LastOperationTime.UTC().Format(time.RFC3339Nano)
			out[i].State = en.State
		}
		return e.writeJSON(out)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no entities")
		return nil
	}
	header := []string{"NAME", "KEY", "LAST OPERATION"}
	if *withState {
		header = append(header, "STATE")
	}
	rows := make([][]string, len(list))
	for i, en := range list {
		rows[i] = []string{en.Name, en.Key, render.Time(en.LastOperationTime)}
		if *withState {
			rows[i] = append(rows[i], render.Value(en.State))
		}
	}
	return render.Table(e.stdout, header, rows)
}

func runEntityGet(ctx context.Context, e *env, args []string) error {
	c := entityCommand("entity get")
	fs := e.flagSet(c.name)
	pos, cn, err := e.parseConnect(ctx, fs, c, args, 2, 2)
	if err != nil {
		return err
	}
	state, err := cn.api.EntityState(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	return e.writeJSON([]byte(state))
}

func runEntitySignal(ctx context.Context, e *env, args []string) error {
	c := entityCommand("entity signal")
	fs := e.flagSet(c.name)
	var input json.RawMessage
	fs.Var(jsonFlag{&input}, "input", "the operation's input, as `JSON` (default none)")
	pos, cn, err := e.parseConnect(ctx, fs, c, args, 3, 3)
	if err != nil {
		return err
	}
	if err := cn.api.SignalEntity(ctx, pos[0], pos[1], pos[2], input); err != nil {
		return err
	}
	return e.done(map[string]string{"name": pos[0], "key": pos[1], "operation": pos[2]}, "signalled %s to %s", pos[2], history.NewEntityID(pos[0], pos[1]))
}

func runEntityClean(ctx context.Context, e *env, args []string) error {
	c := entityCommand("entity clean")
	fs := e.flagSet(c.name)
	removeEmpty := fs.Bool("remove-empty", false, "purge entities with no state, no queued operations and no lock")
	release := fs.Bool("release-orphaned-locks", false, "release locks held by orchestrations that no longer run")
	emptyFor := fs.Duration("empty-for", client.DefaultEmptyEntityIdle, "how long an empty entity must have been idle to be removed")
	if _, err := e.parse(fs, c, args, 0, 0); err != nil {
		return err
	}
	if e.g.storage == "" {
		return usagef("needs --storage: the management API has no route for cleaning entity storage")
	}
	if !*removeEmpty && !*release {
		return usagef("say what to clean: --remove-empty and/or --release-orphaned-locks")
	}
	cn, err := e.connect(ctx)
	if err != nil {
		return err
	}
	res, err := cn.store.CleanEntityStorage(ctx, client.CleanEntityStorageOptions{RemoveEmptyEntities: *removeEmpty, ReleaseOrphanedLocks: *release, EmptyFor: *emptyFor})
	if err != nil {
		return err
	}
	return e.done(map[string]int{"emptyEntitiesRemoved": res.EmptyEntitiesRemoved, "orphanedLocksReleased": res.OrphanedLocksReleased},
		"removed %d empty entities, released %d orphaned locks", res.EmptyEntitiesRemoved, res.OrphanedLocksReleased)
}
