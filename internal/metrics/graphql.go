package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/apperr"
)

// GraphQL returns the gqlgen extension that counts and times operations and counts errors by
// public code. Add it to the handler before other extensions so that it times them too.
//
// gqlgen runs operation interceptors only for requests that parsed and validated; a request
// refused before that (a syntax or validation error, an unknown persisted query, the complexity
// limit) reaches only the response interceptors. The extension is both: the operation
// interceptor sees every response of an operation that ran, subscription events included, and
// the response interceptor accounts for the refused requests.
func (m *Metrics) GraphQL() graphql.HandlerExtension { return graphqlExtension{m} }

type graphqlExtension struct{ m *Metrics }

var (
	_ graphql.HandlerExtension     = graphqlExtension{}
	_ graphql.OperationInterceptor = graphqlExtension{}
	_ graphql.ResponseInterceptor  = graphqlExtension{}
)

func (graphqlExtension) ExtensionName() string                   { return "Metrics" }
func (graphqlExtension) Validate(graphql.ExecutableSchema) error { return nil }

// operationKey marks the context of an operation the operation interceptor accounts for.
type operationKey struct{}

func (e graphqlExtension) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	name, typ := e.m.operationLabels(opCtx)
	start := opCtx.Stats.OperationStart
	if start.IsZero() {
		start = time.Now()
	}
	subscription := typ == string(ast.Subscription)
	var done atomic.Bool
	// finish counts a query or mutation once, when its response is ready. A panic counts as an
	// internal error: gqlgen answers it so, past every interceptor.
	finish := func(panicked bool) {
		if panicked {
			e.m.graphqlErrors.WithLabelValues(string(apperr.Internal)).Inc()
		}
		if subscription || !done.CompareAndSwap(false, true) {
			return
		}
		e.m.operations.WithLabelValues(name, typ).Inc()
		e.m.operationDuration.WithLabelValues(name, typ).Observe(time.Since(start).Seconds())
	}
	if subscription {
		e.m.operations.WithLabelValues(name, typ).Inc()
	}
	returned := false
	defer func() {
		if !returned {
			finish(true)
		}
	}()
	handler := next(context.WithValue(ctx, operationKey{}, true))
	returned = true
	return func(ctx context.Context) *graphql.Response {
		returned := false
		defer func() {
			if !returned {
				finish(true)
			}
		}()
		resp := handler(ctx)
		returned = true
		if resp != nil {
			e.m.countErrors(resp.Errors)
		}
		finish(false)
		return resp
	}
}

func (e graphqlExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if ctx.Value(operationKey{}) != nil {
		return resp // the operation interceptor accounts for it
	}
	// A request refused before it ran: it is an operation too, answered with errors only.
	name, typ, start := OperationAnonymous, "unknown", time.Time{}
	if graphql.HasOperationContext(ctx) {
		opCtx := graphql.GetOperationContext(ctx)
		name, typ = e.m.operationLabels(opCtx)
		start = opCtx.Stats.OperationStart
	}
	e.m.operations.WithLabelValues(name, typ).Inc()
	if !start.IsZero() && typ != string(ast.Subscription) {
		e.m.operationDuration.WithLabelValues(name, typ).Observe(time.Since(start).Seconds())
	}
	if resp != nil {
		e.m.countErrors(resp.Errors)
	}
	return resp
}

// ObserveOperation counts and times an operation answered without the executor — a
// response-cache hit served over HTTP before gqlgen ran — as the GraphQL extension counts one
// that ran: name is the operation's name as the request or the document gives it ("" for
// none), typ its type. Such an answer has no errors.
func (m *Metrics) ObserveOperation(name, typ string, took time.Duration) {
	label := m.names.label(name)
	m.operations.WithLabelValues(label, typ).Inc()
	m.operationDuration.WithLabelValues(label, typ).Observe(took.Seconds())
}

// operationLabels returns the operation and type label values of an operation.
func (m *Metrics) operationLabels(opCtx *graphql.OperationContext) (name, typ string) {
	name, typ = opCtx.OperationName, "unknown"
	if op := opCtx.Operation; op != nil {
		typ = string(op.Operation)
		if name == "" {
			name = op.Name
		}
	}
	return m.names.label(name), typ
}

// countErrors counts a response's errors: once per distinct public code.
func (m *Metrics) countErrors(errs gqlerror.List) {
	if len(errs) == 0 {
		return
	}
	var seen [8]string
	n := 0
	for _, err := range errs {
		code := publicCode(err)
		dup := false
		for _, s := range seen[:n] {
			if s == code {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if n < len(seen) {
			seen[n] = code
			n++
		}
		m.graphqlErrors.WithLabelValues(code).Inc()
	}
}

// publicCode returns the error's extensions.code when it is one of the public codes, else
// INTERNAL_SERVER_ERROR (the error presenter gives every error a public code; this keeps the
// label bounded whatever reaches here).
func publicCode(err *gqlerror.Error) string {
	if err != nil {
		if code, ok := err.Extensions["code"].(string); ok {
			for _, c := range publicCodes {
				if string(c) == code {
					return code
				}
			}
		}
	}
	return string(apperr.Internal)
}
