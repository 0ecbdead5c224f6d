// Package loader batches the reads of one GraphQL operation through dataloaders
// (graph-gophers/dataloader/v7).
//
// A Loaders is built per operation (per request over HTTP, per subscription over WebSocket) and
// travels in the context; nothing read is shared between operations, so nothing outlives what
// the viewer may see. The one thing operations share is round trips: the sidebar's reads of a
// conversation for many viewers go out together (SidebarConversation), each viewer still
// getting only their own row. Each batch function makes one Store call for its keys and returns results in
// key order, with the error, if any, attached to every key of the failed batch.
//
// The batching window is short (Wait, 250µs by default) and is paid by every request that goes
// through it, so the common shapes do not: before resolvers run, the GraphQL layer looks ahead
// in the operation and prefetches what it will need (PrefetchConversations, PrefetchPages,
// PrefetchMembers), one statement per kind, straight into the loaders' caches. A list of 50
// conversations' pages is then one statement however the resolvers' goroutines are scheduled,
// which a time window alone cannot promise on two busy cores.
package loader

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
)

// Config tunes the loaders.
type Config struct {
	// Wait is how long a loader collects keys before it runs a batch.
	Wait time.Duration
	// MaxBatch caps the keys of one batch; more keys run as several batches.
	MaxBatch int
	// OnBatch, if set, is told the loader's name and the size of each batch (metrics).
	OnBatch func(loader string, size int)
	// Online reads whether users are online, in key order, in one Redis round trip (package
	// presence). Nil: nobody is.
	Online func(ctx context.Context, userIDs []int64) ([]bool, error)
	// Typing reads the members typing in conversations, in key order, in one Redis round trip
	// when their member sets are warm (package typing). Nil: nobody is.
	Typing func(ctx context.Context, conversationIDs []int64) ([][]chat.User, error)
}

// Defaults for Config.
const (
	DefaultWait     = 250 * time.Microsecond
	DefaultMaxBatch = 100
)

// Factory builds the Loaders of each operation.
type Factory struct {
	store   chat.Store
	cfg     Config
	sidebar *sidebarBatcher // shared by every operation: see SidebarConversation
}

// NewFactory returns a Factory reading through store.
func NewFactory(store chat.Store, cfg Config) *Factory {
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	return &Factory{store: store, cfg: cfg, sidebar: newSidebarBatcher(store, cfg)}
}

// Loaders are the dataloaders of one operation, for one viewer. Each is built the first time
// the operation uses it: a subscription builds Loaders for every event it delivers (see
// graph.NewHandler), and most events use one or two of them, if any.
type Loaders struct {
	factory       *Factory
	viewerID      int64
	users         lazy[int64, *chat.User]
	conversations lazy[int64, *chat.Conversation]
	memberships   lazy[int64, []chat.Membership]
	pages         lazy[chat.PageKey, chat.Page]
	messages      lazy[int64, *chat.Message]
	unread        lazy[int64, int64]
	reactions     lazy[reactionKey, []string]
	online        lazy[int64, bool]
	typing        lazy[int64, []chat.User]
}

// lazy is a dataloader built on first use, once, however many goroutines ask.
type lazy[K comparable, V any] struct {
	once sync.Once
	l    *dataloader.Loader[K, V]
}

func (z *lazy[K, V]) get(build func() *dataloader.Loader[K, V]) *dataloader.Loader[K, V] {
	z.once.Do(func() { z.l = build() })
	return z.l
}

// reactionKey names a message whose viewer's reactions are wanted.
type reactionKey struct{ conversationID, messageID int64 }

// New returns fresh Loaders for viewerID (0 when anonymous: membership then finds nothing).
func (f *Factory) New(viewerID int64) *Loaders {
	return &Loaders{factory: f, viewerID: viewerID}
}

func (l *Loaders) userLoader() *dataloader.Loader[int64, *chat.User] {
	return l.users.get(func() *dataloader.Loader[int64, *chat.User] {
		return newLoader(l.factory.cfg, "users", l.factory.store.UsersByIDs)
	})
}

func (l *Loaders) conversationLoader() *dataloader.Loader[int64, *chat.Conversation] {
	return l.conversations.get(func() *dataloader.Loader[int64, *chat.Conversation] {
		return newLoader(l.factory.cfg, "conversations", func(ctx context.Context, ids []int64) ([]*chat.Conversation, error) {
			return l.factory.store.ConversationsByIDForMember(ctx, l.viewerID, ids)
		})
	})
}

func (l *Loaders) membershipLoader() *dataloader.Loader[int64, []chat.Membership] {
	return l.memberships.get(func() *dataloader.Loader[int64, []chat.Membership] {
		return newLoader(l.factory.cfg, "memberships", l.factory.store.MembershipsByConversations)
	})
}

func (l *Loaders) pageLoader() *dataloader.Loader[chat.PageKey, chat.Page] {
	return l.pages.get(func() *dataloader.Loader[chat.PageKey, chat.Page] {
		return newLoader(l.factory.cfg, "pages", l.factory.store.MessagePages)
	})
}

func (l *Loaders) messageLoader() *dataloader.Loader[int64, *chat.Message] {
	return l.messages.get(func() *dataloader.Loader[int64, *chat.Message] {
		return newLoader(l.factory.cfg, "messages", l.factory.store.MessagesByID)
	})
}

func (l *Loaders) unreadLoader() *dataloader.Loader[int64, int64] {
	return l.unread.get(func() *dataloader.Loader[int64, int64] {
		return newLoader(l.factory.cfg, "unread", func(ctx context.Context, ids []int64) ([]int64, error) {
			return l.factory.store.UnreadCounts(ctx, l.viewerID, ids)
		})
	})
}

func (l *Loaders) reactionLoader() *dataloader.Loader[reactionKey, []string] {
	return l.reactions.get(func() *dataloader.Loader[reactionKey, []string] {
		return newLoader(l.factory.cfg, "reactions", func(ctx context.Context, keys []reactionKey) ([][]string, error) {
			convs, msgs := make([]int64, len(keys)), make([]int64, len(keys))
			for i, k := range keys {
				convs[i], msgs[i] = k.conversationID, k.messageID
			}
			return l.factory.store.ReactionsOfUser(ctx, l.viewerID, convs, msgs)
		})
	})
}

// Presence and typing change by the second, and a subscription's loaders live as long as it
// does: these two keep what they read for a moment only (freshCache).

func (l *Loaders) onlineLoader() *dataloader.Loader[int64, bool] {
	return l.online.get(func() *dataloader.Loader[int64, bool] {
		cfg := l.factory.cfg
		return newLoader(cfg, "online", func(ctx context.Context, ids []int64) ([]bool, error) {
			if cfg.Online == nil {
				return make([]bool, len(ids)), nil
			}
			return cfg.Online(ctx, ids)
		}, dataloader.WithCache(newFreshCache[int64, bool]()))
	})
}

func (l *Loaders) typingLoader() *dataloader.Loader[int64, []chat.User] {
	return l.typing.get(func() *dataloader.Loader[int64, []chat.User] {
		cfg := l.factory.cfg
		return newLoader(cfg, "typing", func(ctx context.Context, ids []int64) ([][]chat.User, error) {
			if cfg.Typing == nil {
				return make([][]chat.User, len(ids)), nil
			}
			return cfg.Typing(ctx, ids)
		}, dataloader.WithCache(newFreshCache[int64, []chat.User]()))
	})
}

// newLoader wraps a Store batch call, which returns one value per key in key order, as a
// dataloader batch function.
func newLoader[K comparable, V any](cfg Config, name string, fetch func(context.Context, []K) ([]V, error), opts ...dataloader.Option[K, V]) *dataloader.Loader[K, V] {
	batch := func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		values, err := fetchBatch(ctx, cfg, name, fetch, keys)
		results := make([]*dataloader.Result[V], len(keys))
		for i := range results {
			if err != nil {
				results[i] = &dataloader.Result[V]{Error: err}
			} else {
				results[i] = &dataloader.Result[V]{Data: values[i]}
			}
		}
		return results
	}
	return dataloader.NewBatchedLoader(batch, append([]dataloader.Option[K, V]{
		dataloader.WithWait[K, V](cfg.Wait),
		dataloader.WithBatchCapacity[K, V](cfg.MaxBatch),
	}, opts...)...)
}

// fetchBatch runs one batch and checks that it returned one value per key.
func fetchBatch[K comparable, V any](ctx context.Context, cfg Config, name string, fetch func(context.Context, []K) ([]V, error), keys []K) ([]V, error) {
	if cfg.OnBatch != nil {
		cfg.OnBatch(name, len(keys))
	}
	values, err := fetch(ctx, keys)
	if err == nil && len(values) != len(keys) {
		err = errBatchLength
	}
	return values, err
}

// prefetch loads keys in batches of at most MaxBatch, one Store call each, and primes the
// loader's cache with the results (a key already in the cache keeps its value).
func prefetch[K comparable, V any](ctx context.Context, f *Factory, l *dataloader.Loader[K, V], name string, fetch func(context.Context, []K) ([]V, error), keys []K) error {
	todo := make([]K, 0, len(keys))
	seen := make(map[K]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			todo = append(todo, k)
		}
	}
	for len(todo) > 0 {
		n := min(len(todo), f.cfg.MaxBatch)
		values, err := fetchBatch(ctx, f.cfg, name, fetch, todo[:n])
		if err != nil {
			return err
		}
		for i, k := range todo[:n] {
			l.Prime(ctx, k, values[i])
		}
		todo = todo[n:]
	}
	return nil
}

type batchLengthError struct{}

func (batchLengthError) Error() string {
	return "loader: batch returned a different number of results than keys"
}

var errBatchLength error = batchLengthError{}

type ctxKey struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// WithLazy returns ctx carrying Loaders for viewerID that f builds when they are first asked
// for (For), at most once, however many resolvers ask at once. An event of a subscription
// whose result another subscriber's execution made (graph/fanout.go) resolves nothing, and
// builds no Loaders; one that is executed gets fresh Loaders of its own, as with New.
func (f *Factory) WithLazy(ctx context.Context, viewerID int64) context.Context {
	return context.WithValue(ctx, ctxKey{}, &lazyLoaders{f: f, viewerID: viewerID})
}

type lazyLoaders struct {
	f        *Factory
	viewerID int64
	once     sync.Once
	l        *Loaders
}

func (z *lazyLoaders) get() *Loaders {
	z.once.Do(func() { z.l = z.f.New(z.viewerID) })
	return z.l
}

// For returns the Loaders in ctx. It panics when there are none: every operation gets Loaders
// from the handler, so their absence is a wiring bug.
func For(ctx context.Context) *Loaders {
	switch l := ctx.Value(ctxKey{}).(type) {
	case *Loaders:
		return l
	case *lazyLoaders:
		return l.get()
	}
	panic("loader: no Loaders in context")
}

// User loads a user by id; a missing user is nil.
func User(ctx context.Context, id int64) (*chat.User, error) {
	return For(ctx).userLoader().Load(ctx, id)()
}

// Viewer loads the authenticated viewer.
func Viewer(ctx context.Context) (*chat.User, error) {
	id, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	u, err := User(ctx, id)
	if err == nil && u == nil {
		// A valid token for a user that does not exist.
		return nil, apperr.ErrUnauthenticated
	}
	return u, err
}

// Conversation loads a conversation of the viewer's; nil when it is missing or the viewer is not
// a member (the two are indistinguishable on purpose).
func Conversation(ctx context.Context, id int64) (*chat.Conversation, error) {
	if _, err := auth.Viewer(ctx); err != nil {
		return nil, err
	}
	return For(ctx).conversationLoader().Load(ctx, id)()
}

// Memberships loads a conversation's members with their roles, ordered by user id.
func Memberships(ctx context.Context, conversationID int64) ([]chat.Membership, error) {
	return For(ctx).membershipLoader().Load(ctx, conversationID)()
}

// Message loads a message as it is now by id (nil when missing). The caller checks that the
// viewer may see it.
func Message(ctx context.Context, id int64) (*chat.Message, error) {
	return For(ctx).messageLoader().Load(ctx, id)()
}

// Unread loads the viewer's unread count in a conversation of theirs, unless it was read with
// the conversation (a list that asked for it).
func Unread(ctx context.Context, c *chat.Conversation) (int64, error) {
	if c.ViewerUnread != nil {
		return *c.ViewerUnread, nil
	}
	return For(ctx).unreadLoader().Load(ctx, c.ID)()
}

// ViewerReacted reports whether the viewer reacted to a message with emoji.
func ViewerReacted(ctx context.Context, conversationID, messageID int64, emoji string) (bool, error) {
	mine, err := For(ctx).reactionLoader().Load(ctx, reactionKey{conversationID, messageID})()
	return slices.Contains(mine, emoji), err
}

// Reacted names a reaction by its message and emoji, for ViewerReactedAll.
type Reacted struct {
	ConversationID, MessageID int64
	Emoji                     string
}

// ViewerReactedAll reports, for each of rs, whether the viewer reacted so, as ViewerReacted
// does one at a time: every key is queued before any is waited for, so the messages' reactions
// are read in one batch without a goroutine per reaction.
func ViewerReactedAll(ctx context.Context, rs []Reacted) ([]bool, error) {
	l := For(ctx).reactionLoader()
	thunks := make([]dataloader.Thunk[[]string], len(rs))
	for i, r := range rs {
		thunks[i] = l.Load(ctx, reactionKey{r.ConversationID, r.MessageID})
	}
	out := make([]bool, len(rs))
	for i, th := range thunks {
		mine, err := th()
		if err != nil {
			return nil, err
		}
		out[i] = slices.Contains(mine, rs[i].Emoji)
	}
	return out, nil
}

// Online reports whether a user is online (ephemeral: see package presence). The users of one
// operation are read together, in one Redis round trip per batch.
func Online(ctx context.Context, userID int64) (bool, error) {
	return For(ctx).onlineLoader().Load(ctx, userID)()
}

// PrefetchOnline reads whether users are online, one round trip per MaxBatch users, into the
// operation's cache: a list of users whose online the request selects is then one round trip
// however gqlgen schedules the goroutines that marshal its elements.
func PrefetchOnline(ctx context.Context, userIDs []int64) error {
	l := For(ctx)
	if l.factory.cfg.Online == nil {
		return nil
	}
	return prefetch(ctx, l.factory, l.onlineLoader(), "online", l.factory.cfg.Online, userIDs)
}

// Typing loads the members typing now in a conversation the viewer may see (ephemeral: see
// package typing), ordered by user id.
func Typing(ctx context.Context, conversationID int64) ([]chat.User, error) {
	return For(ctx).typingLoader().Load(ctx, conversationID)()
}

// Page loads an offset page of history.
func Page(ctx context.Context, key chat.PageKey) (chat.Page, error) {
	return For(ctx).pageLoader().Load(ctx, key)()
}

// PrefetchConversations loads the viewer's conversations among ids, in one statement per
// MaxBatch ids, into the operation's cache.
func PrefetchConversations(ctx context.Context, ids []int64) error {
	l := For(ctx)
	return prefetch(ctx, l.factory, l.conversationLoader(), "conversations", func(ctx context.Context, ids []int64) ([]*chat.Conversation, error) {
		return l.factory.store.ConversationsByIDForMember(ctx, l.viewerID, ids)
	}, ids)
}

// ConversationNow loads a conversation afresh, past what the operation loaded before: the
// answer of a mutation that changed it.
func ConversationNow(ctx context.Context, id int64) (*chat.Conversation, error) {
	if _, err := auth.Viewer(ctx); err != nil {
		return nil, err
	}
	l := For(ctx)
	l.conversationLoader().Clear(ctx, id)
	l.membershipLoader().Clear(ctx, id)
	l.unreadLoader().Clear(ctx, id)
	c, err := l.conversationLoader().Load(ctx, id)()
	if err == nil && c == nil {
		return nil, apperr.ErrNotFound
	}
	return c, err
}

// PrimeConversations puts conversations already read (a conversation list) into the cache.
func PrimeConversations(ctx context.Context, convs []chat.Conversation) {
	l := For(ctx)
	for i := range convs {
		l.conversationLoader().Prime(ctx, convs[i].ID, &convs[i])
	}
}

// PrefetchPages loads history pages into the operation's cache, one Store call per MaxBatch keys.
func PrefetchPages(ctx context.Context, keys []chat.PageKey) error {
	l := For(ctx)
	return prefetch(ctx, l.factory, l.pageLoader(), "pages", l.factory.store.MessagePages, keys)
}

// PrefetchMemberships loads conversations' members into the operation's cache.
func PrefetchMemberships(ctx context.Context, conversationIDs []int64) error {
	l := For(ctx)
	return prefetch(ctx, l.factory, l.membershipLoader(), "memberships", l.factory.store.MembershipsByConversations, conversationIDs)
}
