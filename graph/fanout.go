package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/streaming"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/live"
)

// Subscription fan-out executes each event once per distinct selection.
//
// Every subscriber of a conversation receives the same event value from package live (one
// pointer for all of them). gqlgen would execute each subscriber's selection on it and encode
// the result, once per subscriber: ten thousand subscribers of one conversation, ten thousand
// executions of the same selection on the same value giving the same bytes. ops/gqlgen rewrites
// the marshaller of every subscription field to call shareEvent instead, which asks the hub
// (live.Hub.Result) for the result of (event, operation, viewer): the first subscriber to ask
// executes and encodes, the others wait for it and reuse its bytes.
//
//   - The operation is a SHA-256 of the document, the operation name and the variables (after
//     coercion, keys sorted): subscribers whose operations agree on all three execute the same
//     selection with the same arguments and directives.
//   - The viewer is part of the key only when the selection reaches a field whose value
//     depends on who views it (viewerDependent, from the table in viewer_fields.go); then
//     only the same viewer's subscriptions (several tabs, several devices) share.
//   - A result is shared only when its execution added no error: errors, and the null they
//     leave, are the business of the subscriber whose execution raised them; everyone else
//     executes for themselves.
//   - Events that are not shared values (viewerEvents: each stream makes its own) are
//     executed per subscriber, as before (sharedEventFields).
//
// The bytes are those the subscriber's own execution would have produced: they are what an
// execution of the same selection on the same event produced. Sharing changes no guarantee of
// delivery: live still decides, per subscriber, which events it receives and in which order,
// and ends a subscriber that stops being a member before the next event reaches it.

// # Delivered without the executor
//
// Sharing the bytes still leaves, for every subscriber and event, gqlgen's machinery around
// them: a response context, the response interceptors, the subscription field's marshaller.
// deliverShared goes around it for the events whose result another subscriber made: the
// subscription's stream (live's channel) is read by the transport first (streaming.Direct),
// which asks the hub for the shared result (live.Hub.SharedForm, same key as shareEvent's); a
// hit is sent as the result's data at once: the field's alias around the shared bytes as
// gqlgen writes them, and beside it the same HTML-escaped as WebSocket sends data, both made
// once per result and kept with it for all its subscribers (streaming.DirectData). Anything else (a result nobody made or one made
// with errors; the stream's end) goes to the executor through a channel of one, which it reads
// at once, and executes as above, filling the shared result for the others. The plan (which
// key, sharePlan) is worked out when the subscription starts, so that its first event too is
// delivered directly when another subscriber has made its result.
//
//   - The key is shareEvent's: the direct path sends only what shareEvent would have
//     returned for the same event, and only a shareable result (no errors); a selection that
//     depends on the viewer is keyed by the viewer (sharePlan).
//   - Skipped per event: the response interceptors, none of which does anything to an event
//     of a subscription without errors (metrics count the operation once, and its errors; the
//     document gate adds a refusal's errors; the lazy loaders are built only when a resolver
//     runs), and the error presenter, which has no error to present.
//   - Kept: everything the transport does (write deadline, token expiry, order, the end of
//     the stream), and everything live does (which events reach the subscriber, in which
//     order, and when it is cut off): the stream is read one event at a time, as gqlgen reads
//     it.

// deliverShared returns the channel the executor reads for subscription field `field` of
// viewer, whose events come from src, having installed the direct delivery of results other
// subscribers made (streaming.Direct); src itself where there is none (events that are not
// shared values, or outside a streaming transport).
func deliverShared[T any](ctx context.Context, hub *live.Hub, field string, viewer int64, src <-chan T) <-chan T {
	if hub == nil || !sharedEventFields[field] || !graphql.HasOperationContext(ctx) {
		return src
	}
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return src
	}
	opCtx := graphql.GetOperationContext(ctx)
	var w bytes.Buffer // what gqlgen writes before the field's value (graphql.ResolveFieldStream)
	w.WriteByte('{')
	graphql.MarshalString(fc.Field.Alias).MarshalGQL(&w)
	w.WriteByte(':')
	prefix := w.Bytes()
	// frame makes the data of a result of the field (the field's alias around its value),
	// then the same escaped for the transports that escape it (streaming.DirectData), in one
	// slice: once per shared result, for all of its subscribers, since the alias is the
	// operation's, which the key names. The data is the first len(prefix)+len(b)+1 bytes.
	frame := func(b []byte) []byte {
		n := len(prefix) + len(b) + 1
		f := make([]byte, 0, 2*n+16)
		f = append(append(append(f, prefix...), b...), '}')
		return streaming.AppendEscaped(f, f[:n])
	}
	toExec := make(chan T, 1)
	// The plan is the one shareEvent works out for the field's selection (planOf keeps it in
	// the operation's stats, where shareEvent finds it): known before the first event, so that
	// the first event too is delivered directly when another subscriber has made its result.
	plan := planOf(opCtx, field, fc.Field.Selections)
	closed := false
	next := func(ctx context.Context) (streaming.DirectData, bool) {
		if closed {
			return streaming.DirectData{}, false
		}
		select {
		case ev, ok := <-src:
			if !ok {
				closed = true
				close(toExec)
				return streaming.DirectData{}, false
			}
			if plan.share {
				key := live.ResultKey{Event: ev, Operation: plan.op}
				if plan.viewer {
					key.Viewer = viewer
				}
				if b, f, ok := hub.SharedForm(key, frame); ok {
					n := len(prefix) + len(b) + 1
					return streaming.DirectData{Data: f[:n:n], Escaped: f[n:]}, true
				}
			}
			toExec <- ev // read by the executor before next is called again
			return streaming.DirectData{}, false
		case <-ctx.Done():
			return streaming.DirectData{}, false
		}
	}
	if !streaming.Direct(ctx, next) {
		return src
	}
	return toExec
}

// sharePlan is what shareEvent needs of an operation, worked out once per operation.
type sharePlan struct {
	share  bool     // the field's events are values shared by all subscribers
	viewer bool     // the selection depends on the viewer
	op     [32]byte // the operation's key
}

// planExtension names the plan in the operation's stats (the operation's own storage; its one
// goroutine executes its events one after another).
const planExtension = "SubscriptionSharePlan"

// shareEvent marshals event, the value subscription field `field` received, for the
// subscriber of ctx: with bytes another subscriber's execution made when their event,
// operation and (if the selection depends on it) viewer are the same, else by marshal.
func shareEvent(ctx context.Context, root ResolverRoot, field string, sel ast.SelectionSet, event any, marshal func(context.Context) graphql.Marshaler) graphql.Marshaler {
	r, _ := root.(*Resolver)
	if r == nil || r.Live == nil || !graphql.HasOperationContext(ctx) {
		return marshal(ctx)
	}
	p := planOf(graphql.GetOperationContext(ctx), field, sel)
	key := live.ResultKey{Operation: p.op}
	if p.share {
		key.Event = event
	}
	if p.viewer {
		key.Viewer, _ = auth.Viewer(ctx)
	}
	b := r.Live.Result(key, func() ([]byte, bool) {
		before := len(graphql.GetErrors(ctx))
		var buf bytes.Buffer
		marshal(ctx).MarshalGQL(&buf)
		return buf.Bytes(), len(graphql.GetErrors(ctx)) == before
	})
	return encoded(b)
}

// encoded is a value encoded already.
type encoded []byte

func (b encoded) MarshalGQL(w io.Writer) { _, _ = w.Write(b) }

// planOf returns the operation's plan, working it out the first time it is asked for.
func planOf(opCtx *graphql.OperationContext, field string, sel ast.SelectionSet) *sharePlan {
	if p, ok := opCtx.Stats.GetExtension(planExtension).(*sharePlan); ok {
		return p
	}
	p := &sharePlan{share: sharedEventFields[field]}
	p.viewer = viewerDependent(opCtx, sel, subscriptionType(field), 0)
	h := sha256.New()
	_, _ = io.WriteString(h, opCtx.RawQuery)
	h.Write([]byte{0})
	_, _ = io.WriteString(h, opCtx.OperationName)
	h.Write([]byte{0})
	vars, err := json.Marshal(opCtx.Variables) // map keys sorted: canonical
	if err != nil {
		p.share = false // cannot happen with coerced variables; executed per subscriber then
	}
	h.Write(vars)
	h.Sum(p.op[:0])
	opCtx.Stats.SetExtension(planExtension, p)
	return p
}

// subscriptionType is the name of the type of subscription field `field` ("" if unknown).
func subscriptionType(field string) string {
	if f := parsedSchema.Subscription.Fields.ForName(field); f != nil {
		return f.Type.Name()
	}
	return ""
}

// viewerDependent reports whether selecting sel on a value of type typeName reaches a field
// whose value depends on the viewer (or one not classified in viewerFields, which counts as
// depending on it), at any depth, for any of the object types the value may have.
func viewerDependent(opCtx *graphql.OperationContext, sel ast.SelectionSet, typeName string, depth int) bool {
	def := parsedSchema.Types[typeName]
	if def == nil || depth > maxShapeDepth {
		return true
	}
	for _, obj := range parsedSchema.GetPossibleTypes(def) {
		for _, f := range graphql.CollectFields(opCtx, sel, satisfiedBy(obj)) {
			if f.Name == "__typename" {
				continue
			}
			perViewer, known := viewerFields[obj.Name+"."+f.Name]
			if perViewer || !known {
				return true
			}
			fd := obj.Fields.ForName(f.Name)
			if fd == nil {
				return true
			}
			switch t := parsedSchema.Types[fd.Type.Name()]; {
			case t == nil:
				return true
			case t.Kind == ast.Object || t.Kind == ast.Interface || t.Kind == ast.Union:
				if viewerDependent(opCtx, f.Selections, t.Name, depth+1) {
					return true
				}
			}
		}
	}
	return false
}

// satisfiedBy lists the type conditions an object of type obj satisfies: its name, its
// interfaces, and the unions it belongs to.
func satisfiedBy(obj *ast.Definition) []string {
	out := append([]string{obj.Name}, obj.Interfaces...)
	for _, t := range parsedSchema.Types {
		if t.Kind == ast.Union && t.Types != nil {
			for _, m := range t.Types {
				if m == obj.Name {
					out = append(out, t.Name)
				}
			}
		}
	}
	return out
}
