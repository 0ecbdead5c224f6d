// Package httptransport serves GraphQL over HTTP as the GraphQL-over-HTTP specification
// (graphql.github.io/graphql-over-http) says, as gqlgen transports ([POST], [GET], [Methods]).
//
// # Media types
//
// The response is application/graphql-response+json when the Accept header names that media
// type explicitly with a quality at least as high as application/json's, and application/json
// otherwise: when there is no Accept header, when it lists only application/json or a wildcard
// (legacy clients, curl's */*), and when it lists nothing we can send (the specification lets a
// server disregard such an Accept header rather than answer 406). A wildcard never selects
// application/graphql-response+json, as in the specification's reference server: a client that
// understands its status codes says so. Both are sent with "; charset=utf-8" and Vary: Accept.
//
// # Status codes
//
//	request                                            application/json   application/graphql-response+json
//	well-formed, executed (even with field errors,      200                200
//	  even with data null)
//	well-formed, not executed (parse, validation,       200                400 (500 for an internal error)
//	  variables, operation name, refused by an extension)
//	body not a JSON object, a field of the wrong type,  400                400
//	  no query, bad variables or extensions in the URL
//	POST Content-Type other than application/json       415                415
//	body over the server's limit                        413                413
//	mutation or subscription over GET                   405, Allow: POST   405, Allow: POST
//	method other than GET, POST, OPTIONS                405, Allow         405, Allow
//
// OPTIONS answers 204 with Allow: GET, POST, OPTIONS. A WebSocket upgrade is left to the
// WebSocket transport. Every error response is a GraphQL response ({"errors": [...]}) in the
// negotiated media type, its errors passed through the executor's error presenter.
//
// A request whose Accept header asks for text/event-stream ([AcceptsEventStream]) belongs to
// the event-stream transport (graph/streaming), which reads it with [ReadGET] and [ReadPOST]
// and answers their errors with [Fail]; add that transport before GET and POST, which would
// otherwise serve it as JSON.
//
// # Writing responses
//
// [WriteResponse] is the one place a response reaches the wire: it encodes the response with
// [AppendResponse], which copies the executor's already-encoded data verbatim (no second pass
// through encoding/json), and sets the status by [Status]. A response cache can store the
// bytes of AppendResponse and send them later with [WriteEncoded].
package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// MediaType is a media type of GraphQL responses.
type MediaType string

const (
	// GraphQLResponseJSON is application/graphql-response+json, whose status codes tell a
	// request that was not executed (4xx) from one that was (200).
	GraphQLResponseJSON MediaType = "application/graphql-response+json"
	// JSON is application/json: 200 for every well-formed request.
	JSON MediaType = "application/json"
)

// ContentType returns the Content-Type header value of m.
func (m MediaType) ContentType() string {
	if m == GraphQLResponseJSON {
		return "application/graphql-response+json; charset=utf-8"
	}
	return "application/json; charset=utf-8"
}

// Negotiate chooses the media type of the response to a request with the given Accept header
// values (see the package doc).
func Negotiate(accept []string) MediaType {
	var gqlQ, jsonQ, appQ, anyQ float64 = -1, -1, -1, -1
	for mt, q := range acceptEntries(accept) {
		switch mt {
		case "application/graphql-response+json":
			gqlQ = max(gqlQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		case "application/*":
			appQ = max(appQ, q)
		case "*/*":
			anyQ = max(anyQ, q)
		}
	}
	// The most specific range that matches application/json gives its quality.
	if jsonQ < 0 {
		jsonQ = appQ
	}
	if jsonQ < 0 {
		jsonQ = anyQ
	}
	if gqlQ > 0 && gqlQ >= jsonQ {
		return GraphQLResponseJSON
	}
	return JSON
}

// AcceptsEventStream reports whether the Accept header values ask for text/event-stream, the
// media type of GraphQL over Server-Sent Events (graph/streaming): they name it with a quality
// above 0 and at least that of application/json and application/graphql-response+json when
// those are named. A wildcard never selects it: a client that reads an event stream says so,
// as EventSource and graphql-sse do.
func AcceptsEventStream(accept []string) bool {
	var sseQ, jsonQ float64 = -1, -1
	for mt, q := range acceptEntries(accept) {
		switch mt {
		case "text/event-stream":
			sseQ = max(sseQ, q)
		case "application/json", "application/graphql-response+json":
			jsonQ = max(jsonQ, q)
		}
	}
	return sseQ > 0 && sseQ >= jsonQ
}

// acceptEntries yields the usable media ranges of Accept header values (see parseAcceptEntry),
// each lower-cased with its quality.
func acceptEntries(accept []string) iter.Seq2[string, float64] {
	return func(yield func(string, float64) bool) {
		for _, header := range accept {
			for entry := range strings.SplitSeq(header, ",") {
				if mt, q, ok := parseAcceptEntry(entry); ok && !yield(mt, q) {
					return
				}
			}
		}
	}
}

// parseAcceptEntry parses one media range of an Accept header: its lower-cased type, its
// quality, and whether it can be used (a charset parameter other than UTF-8 cannot).
func parseAcceptEntry(entry string) (mt string, q float64, ok bool) {
	mt, params, _ := strings.Cut(entry, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if mt == "" {
		return "", 0, false
	}
	q = 1
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.Trim(strings.TrimSpace(v), `"`)
		switch k {
		case "q":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				return "", 0, false
			}
			q = f
		case "charset":
			if !strings.EqualFold(v, "utf-8") && !strings.EqualFold(v, "utf8") {
				return "", 0, false
			}
		}
	}
	return mt, q, true
}

func negotiate(r *http.Request) MediaType { return Negotiate(r.Header.Values("Accept")) }

// Status returns the HTTP status of resp, the response to a well-formed request, sent as m:
// with application/json always 200; with application/graphql-response+json 200 when the
// response has data (execution started, even if data is null), else 400, or 500 when an
// error is an internal one.
func Status(m MediaType, resp *graphql.Response) int {
	if m != GraphQLResponseJSON || len(resp.Data) > 0 {
		return http.StatusOK
	}
	for _, e := range resp.Errors {
		if e != nil && e.Extensions["code"] == "INTERNAL_SERVER_ERROR" {
			return http.StatusInternalServerError
		}
	}
	return http.StatusBadRequest
}

// WriteResponse writes resp as m with the status given by [Status].
func WriteResponse(w http.ResponseWriter, m MediaType, resp *graphql.Response) {
	writeStatus(w, m, Status(m, resp), resp)
}

func writeStatus(w http.ResponseWriter, m MediaType, status int, resp *graphql.Response) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	b, err := AppendResponse((*buf)[:0], resp)
	if err != nil {
		// Only an extension or error value that encoding/json refuses can get here.
		status = http.StatusInternalServerError
		b = append(b[:0], `{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`...)
	}
	WriteEncoded(w, m, status, b)
	if cap(b) <= maxPooledBuffer {
		*buf = b
	}
}

// WriteEncoded writes body, a GraphQL response encoded by [AppendResponse], as m with status.
func WriteEncoded(w http.ResponseWriter, m MediaType, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", m.ContentType())
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Add("Vary", "Accept")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// AppendResponse appends the JSON encoding of resp to dst: errors first, then data, copied
// verbatim (the executor has encoded it already), then the fields of incremental delivery and
// extensions. A response without data (a request that was not executed) has no "data" key.
func AppendResponse(dst []byte, resp *graphql.Response) ([]byte, error) {
	dst = append(dst, '{')
	n := len(dst)
	field := func(name string) {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	marshal := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		field(name)
		dst = append(dst, b...)
		return nil
	}
	if len(resp.Errors) > 0 {
		if err := marshal("errors", resp.Errors); err != nil {
			return dst, err
		}
	}
	if len(resp.Data) > 0 {
		field("data")
		dst = append(dst, resp.Data...)
	}
	if resp.Label != "" {
		if err := marshal("label", resp.Label); err != nil {
			return dst, err
		}
	}
	if len(resp.Path) > 0 {
		if err := marshal("path", resp.Path); err != nil {
			return dst, err
		}
	}
	if resp.HasNext != nil {
		field("hasNext")
		dst = strconv.AppendBool(dst, *resp.HasNext)
	}
	if len(resp.Extensions) > 0 {
		if err := marshal("extensions", resp.Extensions); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

const maxPooledBuffer = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// fail sends a request-level error: a GraphQL response with one error (through the
// executor's error presenter) and the given status.
func fail(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, m MediaType, status int, msg string) {
	if status == http.StatusUnsupportedMediaType {
		w.Header().Set("Accept-Post", "application/json")
	}
	resp := exec.DispatchError(r.Context(), gqlerror.List{{Message: msg}})
	writeStatus(w, m, status, resp)
}

// Fail answers r with a request-level error: a GraphQL response with one error, passed through
// exec's error presenter, in the media type r accepts (JSON unless it names
// application/graphql-response+json), with status. Transports of their own (the event stream)
// answer the errors of [ReadGET] and [ReadPOST] with it.
func Fail(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, msg string) {
	fail(w, r, exec, negotiate(r), status, msg)
}

// AccessTokenParam is the URL parameter that may carry the token of a GET request for an event
// stream, since browsers' EventSource cannot send an Authorization header (graph/streaming).
// [ReadGET] and [ReadPOST] refuse a request that carries it: a token in a URL is written to
// proxies' logs and browsers' histories, and is taken only where nothing else works.
const AccessTokenParam = "access_token"

// AccessTokenRefusal is the message of a request refused for an access_token in its URL.
const AccessTokenRefusal = "access_token is accepted only in the URL of a GET request for text/event-stream (EventSource): send the token in an Authorization: Bearer header"

// RequestError is a request that is not a GraphQL request the server takes: the status to
// answer with (400, 413, 415) and the message of its one error.
type RequestError struct {
	Status  int
	Message string
}

func (e *RequestError) Error() string { return e.Message }

func badRequest(msg string) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Message: msg}
}

// POST serves POST requests whose body is a JSON object {query, operationName, variables,
// extensions}, sent as Content-Type application/json.
type POST struct{}

// Supports reports whether r is a POST (not a WebSocket upgrade).
func (POST) Supports(r *http.Request) bool {
	return plainRequest(r, http.MethodPost)
}

// Do serves r.
func (POST) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	serve(w, r, exec, ReadPOST, false)
}

// The transports of this package.
var _ = []graphql.Transport{POST{}, GET{}, Methods{}}

// plainRequest reports whether r is a request of method that is not a WebSocket upgrade.
func plainRequest(r *http.Request, method string) bool {
	return r.Method == method && r.Header.Get("Upgrade") == ""
}

// serve answers r with the GraphQL request read decodes from it (get: r came by GET, see
// execute), or with read's RequestError.
func serve(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, read func(*http.Request) (*graphql.RawParams, *RequestError), get bool) {
	m := negotiate(r)
	var params *graphql.RawParams
	var err *RequestError
	if d, ok := r.Context().Value(decodedKey{}).(*decoded); ok {
		params, err = d.params, d.err
	} else {
		params, err = read(r)
	}
	if err != nil {
		fail(w, r, exec, m, err.Status, err.Message)
		return
	}
	execute(w, r, exec, m, params, get)
}

type decodedKey struct{}

type decoded struct {
	params *graphql.RawParams
	err    *RequestError
}

// WithDecoded returns r carrying what ReadPOST or ReadGET made of it, so that the transport
// serving r uses that instead of decoding the request a second time (the response cache's
// look-up before gqlgen decodes it first, and on a miss the request goes on to the transport).
// GET and POST never read the body of a request that carries it: it may have been read.
func WithDecoded(r *http.Request, params *graphql.RawParams, err *RequestError) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), decodedKey{}, &decoded{params: params, err: err}))
}

// ReadPOST decodes the GraphQL request in the body of r, a POST: a JSON object {query,
// operationName, variables, extensions} sent as application/json, UTF-8 without lone
// surrogates, with a query or a persisted-query hash, and no access_token in the URL. Anything
// else is a RequestError: 415 for another Content-Type, 413 for a body over the limit
// http.MaxBytesReader put on it, else 400.
func ReadPOST(r *http.Request) (*graphql.RawParams, *RequestError) {
	if r.URL.RawQuery != "" && r.URL.Query().Has(AccessTokenParam) {
		return nil, badRequest(AccessTokenRefusal)
	}
	if !jsonContentType(r.Header.Get("Content-Type")) {
		return nil, &RequestError{Status: http.StatusUnsupportedMediaType, Message: "unsupported Content-Type: send the request as application/json"}
	}
	start := graphql.Now()
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			bodyPool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Message: "request body too large"}
		}
		return nil, badRequest("could not read the request body")
	}
	if !ValidText(buf.Bytes()) {
		return nil, badRequest("the request body must be UTF-8 text, without lone UTF-16 surrogates")
	}
	params := &graphql.RawParams{}
	// The common shape first, without reflection; decodeJSON decides everything else.
	if !fastDecode(buf.Bytes(), params) {
		if err := decodeJSON(buf.Bytes(), params); err != nil {
			return nil, badRequest("the request body is not a GraphQL request: want a JSON object with a string query and optional operationName, variables and extensions")
		}
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	return params, hasQuery(params)
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// hasQuery refuses a request with neither a query nor a persisted-query hash.
func hasQuery(params *graphql.RawParams) *RequestError {
	if params.Query == "" && params.Extensions["persistedQuery"] == nil {
		return badRequest("the request has no query")
	}
	return nil
}

// jsonContentType reports whether ct is application/json, in UTF-8 if it names a charset.
func jsonContentType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

// decodeJSON decodes one JSON value (and nothing after it) into v, numbers as json.Number so
// that Int64 and ID variables keep every digit.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// GET serves GET requests with the parameters query, operationName, variables (JSON) and
// extensions (JSON) in the URL. Only queries: mutations and subscriptions get 405.
type GET struct{}

// Supports reports whether r is a GET that is not a WebSocket upgrade.
func (GET) Supports(r *http.Request) bool {
	return plainRequest(r, http.MethodGet)
}

// Do serves r.
func (GET) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	serve(w, r, exec, ReadGET, true)
}

// ReadGET decodes the GraphQL request in the URL of r, a GET: the parameters query,
// operationName, variables (a JSON object) and extensions (a JSON object), UTF-8 without lone
// surrogates, with a query or a persisted-query hash; other parameters are ignored but
// access_token, which is refused. Anything else is a RequestError (400).
func ReadGET(r *http.Request) (*graphql.RawParams, *RequestError) {
	start := graphql.Now()
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("the URL's query string is malformed")
	}
	for _, vs := range q {
		for _, v := range vs {
			if !ValidText([]byte(v)) {
				return nil, badRequest("the URL's parameters must be UTF-8 text, without lone UTF-16 surrogates")
			}
		}
	}
	if q.Has(AccessTokenParam) {
		return nil, badRequest(AccessTokenRefusal)
	}
	params := &graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName"), Headers: r.Header}
	for _, p := range []struct {
		name string
		into *map[string]any
	}{{"variables", &params.Variables}, {"extensions", &params.Extensions}} {
		if v := q.Get(p.name); v != "" {
			if err := decodeJSON([]byte(v), p.into); err != nil {
				return nil, badRequest("the " + p.name + " parameter is not a JSON object")
			}
		}
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	return params, hasQuery(params)
}

// execute runs a decoded request and writes its response.
func execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, m MediaType, params *graphql.RawParams, get bool) {
	ctx := r.Context()
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		WriteResponse(w, m, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
		return
	}
	if get && opCtx.Operation != nil && opCtx.Operation.Operation != ast.Query {
		w.Header().Set("Allow", http.MethodPost)
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, opCtx),
			gqlerror.List{{Message: "GET requests only allow queries: send a " + string(opCtx.Operation.Operation) + " with POST"}})
		writeStatus(w, m, http.StatusMethodNotAllowed, resp)
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(ctx)
	if resp == nil {
		// Only a cancelled request gets no response; the client is gone.
		resp = &graphql.Response{Errors: gqlerror.List{{Message: "internal error", Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR"}}}}
	}
	WriteResponse(w, m, resp)
}

// allowed is the Allow header of /query.
const allowed = "GET, POST, OPTIONS"

// Methods answers every request that GET and POST do not serve, but a WebSocket upgrade:
// OPTIONS with 204 and the allowed methods, anything else with 405.
type Methods struct{}

// Supports reports whether r is neither a GET nor a POST.
func (Methods) Supports(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodPost
}

// Do serves r.
func (Methods) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	w.Header().Set("Allow", allowed)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	fail(w, r, exec, negotiate(r), http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET or POST")
}

// ValidText reports whether b, a JSON text, is valid UTF-8 without a \u escape of a lone UTF-16
// surrogate. encoding/json would silently turn both into U+FFFD, storing what the client did not
// send; a request that has them is refused instead (BAD_USER_INPUT).
func ValidText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 >= len(b) || b[i+1] != 'u' {
			i++ // an escape of one character (a backslash escaped among them)
			continue
		}
		r, ok := hex4(b, i+2)
		if !ok {
			return true // not JSON: the decoder says so
		}
		i += 5
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // a low surrogate alone
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(b, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
