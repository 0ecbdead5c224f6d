package document

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/internal/defaults"
)

// CacheConfig bounds the cache of validated documents.
type CacheConfig struct {
	// Bytes bounds the estimated memory of the cached documents (EntryBytes each);
	// zero: DefaultCacheBytes.
	Bytes int64
	// Entries bounds their number; zero: DefaultCacheEntries.
	Entries int
}

// The default bounds: 1000 documents, as gqlgen's default cache, and 64 MiB estimated
// (EntryBytes), which holds about 380 documents of the clients' size (the clients send 18)
// and never more than 64 MiB however large the documents.
const (
	DefaultCacheBytes   = 64 << 20
	DefaultCacheEntries = 1000
)

// ASTFactor and EntryOverhead estimate what one cached document holds in memory:
// EntryBytes(query) = len(query)*ASTFactor + EntryOverhead.
//
// Measured by TestEntryBytesBoundsTheHeap (the live heap after a GC with 100 documents of a
// shape parsed, validated and cached, per byte of document): 14 for the clients' documents,
// where indentation and names dominate; 24 to 31 for introspection, arguments and variables;
// 62 for `a: me { id id id … }`, where each 3-byte field is an ast.Field and its position; 108
// for a list of one-digit values (`memberIds: [1 1 1 …]`), the densest shape found, each two
// bytes an ast.Value, its position and its ast.ChildValue. Comments are not kept (1 per byte).
// ASTFactor leaves room over the densest; EntryOverhead covers a document that is nearly
// empty (about 560 bytes for `query Q { __typename }`) and the cache's list element and index.
const (
	ASTFactor     = 128
	EntryOverhead = 1 << 10
)

// EntryBytes is the estimated memory of the cache entry of query.
func EntryBytes(query string) int64 { return int64(len(query))*ASTFactor + EntryOverhead }

// Stats counts the cache's lookups and holdings, and the documents the gate parsed.
type Stats struct {
	Hits, Misses, Parses int64
	Entries              int
	Bytes                int64
}

// Cache is a least-recently-used cache of validated documents, keyed by their text, bounded in
// entries and in estimated bytes (EntryBytes): adding evicts from the least recently used end
// until both bounds hold, and a document larger than the whole byte bound is not stored. It is
// safe for concurrent use.
type Cache struct {
	maxBytes   int64
	maxEntries int

	mu    sync.Mutex
	bytes int64
	order list.List // of *cacheEntry, most recently used first
	index map[string]*list.Element

	hits, misses atomic.Int64
}

type cacheEntry struct {
	query string
	doc   *ast.QueryDocument
	size  int64
}

// NewCache returns an empty cache.
func NewCache(cfg CacheConfig) *Cache {
	cfg.Bytes = defaults.Positive(cfg.Bytes, DefaultCacheBytes)
	cfg.Entries = defaults.Positive(cfg.Entries, DefaultCacheEntries)
	return &Cache{maxBytes: cfg.Bytes, maxEntries: cfg.Entries, index: make(map[string]*list.Element)}
}

// get returns the document cached for query, counting a hit or a miss.
func (c *Cache) get(query string) (*ast.QueryDocument, bool) {
	doc, ok := c.peek(query)
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return doc, ok
}

// peek is get without counting.
func (c *Cache) peek(query string) (*ast.QueryDocument, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[query]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).doc, true
}

// add stores doc for query as the most recently used entry.
func (c *Cache) add(query string, doc *ast.QueryDocument) {
	size := EntryBytes(query)
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[query]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.index[query] = c.order.PushFront(&cacheEntry{query: query, doc: doc, size: size})
	c.bytes += size
	for c.bytes > c.maxBytes || c.order.Len() > c.maxEntries {
		last := c.order.Back()
		e := last.Value.(*cacheEntry)
		c.order.Remove(last)
		delete(c.index, e.query)
		c.bytes -= e.size
	}
}

// Stats returns the counters and the current holdings.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: c.order.Len(), Bytes: c.bytes}
}
