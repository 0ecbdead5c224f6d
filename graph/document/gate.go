// Package document is the gate every GraphQL document passes before gqlgen sees it: persisted
// and trusted documents, size, parsing, limits on the parsed document, validation and the
// cache of validated documents.
//
// The invariant: gqlgen never parses or validates a document itself, so nothing it does to a
// document is unbounded. The Gate is a gqlgen OperationParameterMutator, which runs before
// gqlgen's parser; it resolves the document text, refuses it or admits it, and hands gqlgen the
// validated AST through the query cache (Gate.QueryCache, installed with
// handler.Server.SetQueryCache), where gqlgen's parseQuery looks first. The AST is also pinned
// to the operation, so that an eviction between the gate and gqlgen cannot send gqlgen to its
// own parser, and the cache gqlgen sees ignores what gqlgen would add to it. Each step runs
// only on what the steps before it bounded, in this order:
//
//  1. Persisted queries (the APQ protocol, extensions.persistedQuery {version: 1, sha256Hash}):
//     a hash alone is looked up in the trusted-document manifest, then in the APQ store;
//     unknown, it is PERSISTED_QUERY_NOT_FOUND.
//  2. Size: a document over Limits.DocumentBytes is refused unread.
//  3. A hash sent with its query must be the query's SHA-256. With Config.TrustedOnly, a
//     document whose SHA-256 is not in the manifest is refused, unparsed.
//  4. Cache: a document admitted before is taken from the cache, an LRU bounded in entries and
//     in estimated bytes (EntryBytes) that holds only documents that passed every step.
//  5. Parsing, with the token limit.
//  6. Limits on the parsed, unvalidated document (Limits): what is written is counted once;
//     fields are counted with fragments expanded at each spread, by a walk that stops at the
//     first limit exceeded and does not enter a fragment cycle. @defer and @stream are refused
//     here (responses are sent whole, and the schema served, WithoutIncrementalDelivery, does
//     not declare them), and so are __schema and __type when Config.Introspection is off, so
//     that introspection never reaches a resolver that would answer an internal error.
//  7. Validation with gqlparser's default rules, as gqlgen runs them (without suggestions unless
//     Config.FieldSuggestions): at most MaxValidationErrors errors, then one saying there were
//     more; past the cap the rules' error callback returns at once.
//  8. The admitted document is cached and, when it came with its hash, given to the APQ store
//     (up to Config.PersistedQueryBytes): the store never holds a document that did not pass.
//
// Every refusal is a client error: BAD_USER_INPUT, or PERSISTED_QUERY_NOT_FOUND, in
// extensions.code, and no message repeats more than a few dozen bytes of the document. What
// this bounds (measured by BenchmarkBombs and asserted per document by FuzzGate): no document
// costs more than 50 ms of CPU or 10 MB of allocation before it is refused or admitted.
package document

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/defaults"
)

// MaxValidationErrors is how many validation errors a response reports; one more error says
// that there were more.
const MaxValidationErrors = 20

// DefaultPersistedQueryBytes is the longest document the APQ store takes when
// Config.PersistedQueryBytes is zero: eight times the largest document a client sends.
const DefaultPersistedQueryBytes = 8 << 10

// Config configures a Gate.
type Config struct {
	// Schema is the schema documents are validated against: the one the executor serves.
	Schema *ast.Schema
	// Limits bound each document; zero fields take their defaults.
	Limits Limits
	// Introspection admits __schema and __type; off, they are refused with BAD_USER_INPUT.
	Introspection bool
	// FieldSuggestions lets validation errors suggest names ("Did you mean …?").
	FieldSuggestions bool
	// Trusted is the trusted-document manifest: a hash alone resolves here first. May be nil.
	Trusted Manifest
	// TrustedOnly refuses every document that is not in Trusted, before parsing it, and
	// neither reads nor writes the APQ store.
	TrustedOnly bool
	// PersistedQueries is the APQ store (internal/apq). Nil: only the manifest resolves hashes.
	PersistedQueries graphql.Cache[string]
	// PersistedQueryBytes is the longest document the APQ store takes (longer ones run but are
	// not stored); zero: DefaultPersistedQueryBytes.
	PersistedQueryBytes int
	// Cache bounds the cache of validated documents; zero fields take their defaults.
	Cache CacheConfig
}

// Gate is the gqlgen extension that admits documents (see the package comment). Add it with
// handler.Server.Use and install QueryCache with handler.Server.SetQueryCache.
type Gate struct {
	schema      *ast.Schema
	limits      Limits
	introspect  bool
	suggestions bool
	trusted     Manifest
	trustedText map[string]struct{} // the manifest's documents, for Admitted
	trustedOnly bool
	apq         graphql.Cache[string]
	apqBytes    int
	cache       *Cache
	parses      atomic.Int64
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.ResponseInterceptor
} = (*Gate)(nil)

// New returns a Gate.
func New(cfg Config) (*Gate, error) {
	if cfg.Schema == nil {
		return nil, errors.New("document: Config.Schema is nil")
	}
	cfg.PersistedQueryBytes = defaults.Positive(cfg.PersistedQueryBytes, DefaultPersistedQueryBytes)
	texts := make(map[string]struct{}, len(cfg.Trusted))
	for _, text := range cfg.Trusted {
		texts[text] = struct{}{}
	}
	return &Gate{
		schema: cfg.Schema, limits: cfg.Limits.WithDefaults(), introspect: cfg.Introspection,
		suggestions: cfg.FieldSuggestions, trusted: cfg.Trusted, trustedText: texts, trustedOnly: cfg.TrustedOnly,
		apq: cfg.PersistedQueries, apqBytes: cfg.PersistedQueryBytes, cache: NewCache(cfg.Cache),
	}, nil
}

// Admitted returns the document of p and its validated AST when the gate would admit it, and
// can tell without a round trip to Redis, parsing or validating: the document is in the cache
// of admitted documents, and p names it as the gate would take it. That is a document sent as
// text alone, or a persisted-query hash the trusted manifest holds, alone or with its very
// text; with TrustedOnly, only documents of the manifest. Anything else is not ok, and must go
// through the gate: a hash only the APQ store may know, a hash sent with a text the manifest
// does not hold (the gate checks it and registers it in the APQ store), a malformed
// persisted-query extension, a document over the size limit or never admitted here.
func (g *Gate) Admitted(p *graphql.RawParams) (string, *ast.QueryDocument, bool) {
	hash, err := persistedHash(p.Extensions)
	if err != nil {
		return "", nil, false
	}
	query := p.Query
	if hash != "" {
		text, ok := g.trusted[hash]
		if !ok || (query != "" && query != text) {
			return "", nil, false
		}
		query = text
	} else if g.trustedOnly {
		if _, ok := g.trustedText[query]; !ok {
			return "", nil, false
		}
	}
	if query == "" || len(query) > g.limits.DocumentBytes {
		return "", nil, false
	}
	doc, ok := g.cache.peek(query)
	return query, doc, ok
}

// ExtensionName implements graphql.HandlerExtension.
func (*Gate) ExtensionName() string { return extensionName }

// Validate implements graphql.HandlerExtension: the gate must validate against the schema
// the executor serves.
func (g *Gate) Validate(es graphql.ExecutableSchema) error {
	if es.Schema() != g.schema {
		return errors.New("document: the gate's schema is not the executable schema's")
	}
	return nil
}

// QueryCache is the cache to install with handler.Server.SetQueryCache. Get answers the
// document the gate admitted for the operation in ctx (pinned there, so eviction cannot lose
// it), else the cache's entry; Add does nothing, so that only documents the gate admitted are
// ever stored.
func (g *Gate) QueryCache() graphql.Cache[*ast.QueryDocument] { return queryCache{g} }

// Stats reports the cache's counters and how many documents were parsed.
func (g *Gate) Stats() Stats {
	s := g.cache.Stats()
	s.Parses = g.parses.Load()
	return s
}

// MutateOperationParameters implements graphql.OperationParameterMutator: it resolves, checks
// and validates the document of p, and refuses the operation at the first step it fails.
func (g *Gate) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	hash, err := persistedHash(p.Extensions)
	if err != nil {
		return err
	}
	sent := p.Query != ""
	if hash != "" && !sent {
		text, ok := g.lookup(ctx, hash)
		if !ok {
			return refusal(apperr.PersistedQueryNotFound, "PersistedQueryNotFound")
		}
		p.Query = text
	}
	if len(p.Query) > g.limits.DocumentBytes {
		return badInput("the document is larger than %d bytes", g.limits.DocumentBytes)
	}
	var sum string
	if sent && (hash != "" || g.trustedOnly) {
		sum = sha256Hex(p.Query)
	}
	if sent && hash != "" && sum != hash {
		return badInput("the persisted query's sha256Hash is not the SHA-256 of its query")
	}
	if sent && g.trustedOnly {
		if _, ok := g.trusted[sum]; !ok {
			return badInput("only trusted documents may run")
		}
	}
	doc, errs := g.admit(p.Query)
	if len(errs) > 0 {
		if len(errs) > 1 && graphql.HasOperationContext(ctx) {
			// The mutator returns one error; InterceptResponse adds the others to the response.
			graphql.GetOperationContext(ctx).Stats.SetExtension(extensionName, &pin{more: errs[1:]})
		}
		return errs[0]
	}
	if graphql.HasOperationContext(ctx) {
		graphql.GetOperationContext(ctx).Stats.SetExtension(extensionName, &pin{query: p.Query, doc: doc})
	}
	if sent && hash != "" && g.apq != nil && !g.trustedOnly && len(p.Query) <= g.apqBytes {
		if _, known := g.trusted[hash]; !known {
			g.apq.Add(ctx, hash, p.Query)
		}
	}
	return nil
}

// InterceptResponse implements graphql.ResponseInterceptor: to the response to an operation
// the gate refused with several errors (gqlgen's DispatchError), it adds all but the first,
// which the refusal carried.
func (g *Gate) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if graphql.HasOperationContext(ctx) {
		stats := &graphql.GetOperationContext(ctx).Stats
		if p, ok := stats.GetExtension(extensionName).(*pin); ok && len(p.more) > 0 {
			for _, err := range p.more {
				graphql.AddError(ctx, err)
			}
			p.more = nil
		}
	}
	return next(ctx)
}

// Check runs the steps of the gate that concern the document alone (size, cache, parsing,
// limits, introspection, validation) on query, and returns its validated AST or the errors
// that refuse it (at most MaxValidationErrors+1).
func (g *Gate) Check(query string) (*ast.QueryDocument, gqlerror.List) {
	if len(query) > g.limits.DocumentBytes {
		return nil, gqlerror.List{badInput("the document is larger than %d bytes", g.limits.DocumentBytes)}
	}
	return g.admit(query)
}

const extensionName = "DocumentGate"

// A refusal of the gate is an error about the request, as gqlgen's own parse and validation
// errors are: over WebSocket, gqlgen's transport sends such errors (of "protocol" kind) as an
// error message with the whole presented list, where it would send errors of "user" kind as a
// result. Registered once, before any request: gqlgen reads the registry unlocked.
func init() { errcode.RegisterErrorType(string(apperr.BadUserInput), errcode.KindProtocol) }

// pin is what the gate leaves in the operation's stats: the document it admitted, or the
// errors of a refusal after the first.
type pin struct {
	query string
	doc   *ast.QueryDocument
	more  gqlerror.List
}

// lookup resolves a hash sent alone: the manifest, then (unless trusted documents only) the
// APQ store.
func (g *Gate) lookup(ctx context.Context, hash string) (string, bool) {
	if text, ok := g.trusted[hash]; ok {
		return text, true
	}
	if g.apq == nil || g.trustedOnly {
		return "", false
	}
	return g.apq.Get(ctx, hash)
}

// admit returns the validated AST of query, from the cache or parsed, limited and validated
// and then cached; query is within the size limit.
func (g *Gate) admit(query string) (*ast.QueryDocument, gqlerror.List) {
	if doc, ok := g.cache.get(query); ok {
		return doc, nil
	}
	g.parses.Add(1)
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, g.limits.Tokens)
	if err != nil {
		var gqlErr *gqlerror.Error
		if !errors.As(err, &gqlErr) {
			gqlErr = gqlerror.Errorf("the document does not parse")
		}
		return nil, gqlerror.List{asBadInput(gqlErr)}
	}
	if len(doc.Operations) == 0 {
		return nil, gqlerror.List{badInput("no operation provided")}
	}
	s := checkShape(doc, g.limits)
	if s.exceeded != "" {
		return nil, gqlerror.List{badInput("%s", s.exceeded)}
	}
	if s.introspection && !g.introspect {
		return nil, gqlerror.List{badInput("introspection is disabled")}
	}
	if errs := g.validate(doc); len(errs) > 0 {
		return nil, errs
	}
	g.cache.add(query, doc)
	return doc, nil
}

// validate runs gqlparser's default rules as gqlgen's parseQuery does, and reports at most
// MaxValidationErrors errors and then one more saying there were more. Every rule's error
// callback is wrapped: past the cap it returns at once, so the errors of a document that
// conflicts with itself a million times are not built.
func (g *Gate) validate(doc *ast.QueryDocument) gqlerror.List {
	set := rules.NewDefaultRules()
	if g.suggestions {
		set.RemoveRule(rules.FieldsOnCorrectTypeRuleWithoutSuggestions.Name)
		set.AddRule(rules.FieldsOnCorrectTypeRule.Name, rules.FieldsOnCorrectTypeRule.RuleFunc)
		set.RemoveRule(rules.ScalarLeafsRuleWithoutSuggestions.Name)
		set.AddRule(rules.ScalarLeafsRule.Name, rules.ScalarLeafsRule.RuleFunc)
	} else {
		set.RemoveRule(rules.FieldsOnCorrectTypeRule.Name)
		set.AddRule(rules.FieldsOnCorrectTypeRuleWithoutSuggestions.Name, rules.FieldsOnCorrectTypeRuleWithoutSuggestions.RuleFunc)
		set.RemoveRule(rules.ScalarLeafsRule.Name)
		set.AddRule(rules.ScalarLeafsRuleWithoutSuggestions.Name, rules.ScalarLeafsRuleWithoutSuggestions.RuleFunc)
	}
	reported, more := 0, false
	for name, rule := range set.GetInner() {
		set.ReplaceRule(name, func(events *validator.Events, addError validator.AddErrFunc) {
			rule(events, func(options ...validator.ErrorOption) {
				if reported >= MaxValidationErrors {
					more = true
					return
				}
				reported++
				addError(options...)
			})
		})
	}
	errs := validator.ValidateWithRules(g.schema, doc, set)
	if more {
		errs = append(errs, gqlerror.Errorf("too many validation errors: only the first %d are reported", MaxValidationErrors))
	}
	for i, err := range errs {
		errs[i] = asBadInput(err)
	}
	return errs
}

// persistedHash reads extensions.persistedQuery: "" when there is none.
func persistedHash(ext map[string]any) (string, *gqlerror.Error) {
	raw, ok := ext["persistedQuery"]
	if !ok || raw == nil {
		return "", nil
	}
	pq, ok := raw.(map[string]any)
	if !ok {
		return "", badInput("extensions.persistedQuery must be an object with version 1 and sha256Hash")
	}
	if !isOne(pq["version"]) {
		return "", badInput("unsupported persisted query version: only version 1 is")
	}
	hash, ok := pq["sha256Hash"].(string)
	if !ok || hash == "" {
		return "", badInput("extensions.persistedQuery.sha256Hash must be a string")
	}
	return hash, nil
}

func isOne(v any) bool {
	switch v := v.(type) {
	case json.Number:
		return v == "1"
	case float64:
		return v == 1
	case int:
		return v == 1
	case int64:
		return v == 1
	}
	return false
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Parser and validator messages quote parts of the document: a token, a name, a value, which
// may be as long as the document. Each quoted part is cut to maxQuoted bytes and the message to
// maxMessage, so that no message repeats more of a document than that.
const (
	maxQuoted  = 40
	maxMessage = 300
)

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func badInput(format string, args ...any) *gqlerror.Error {
	return refusal(apperr.BadUserInput, fmt.Sprintf(format, args...))
}

func refusal(code apperr.Code, msg string) *gqlerror.Error {
	err := &gqlerror.Error{Message: msg}
	errcode.Set(err, string(code))
	return err
}

// asBadInput marks a parser or validator error as BAD_USER_INPUT and clips its message.
func asBadInput(err *gqlerror.Error) *gqlerror.Error {
	err.Message = clip(err.Message)
	errcode.Set(err, string(apperr.BadUserInput))
	return err
}

func clip(s string) string {
	s = quoted.ReplaceAllStringFunc(s, func(q string) string {
		if len(q) <= maxQuoted {
			return q
		}
		return cut(q, maxQuoted-1) + `…"`
	})
	if len(s) <= maxMessage {
		return s
	}
	return cut(s, maxMessage) + "…"
}

// cut returns the longest prefix of s of at most n bytes that ends on a rune boundary.
func cut(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

type queryCache struct{ g *Gate }

func (c queryCache) Get(ctx context.Context, query string) (*ast.QueryDocument, bool) {
	if graphql.HasOperationContext(ctx) {
		if p, ok := graphql.GetOperationContext(ctx).Stats.GetExtension(extensionName).(*pin); ok && p.doc != nil && p.query == query {
			return p.doc, true
		}
	}
	return c.g.cache.peek(query)
}

func (queryCache) Add(context.Context, string, *ast.QueryDocument) {}
