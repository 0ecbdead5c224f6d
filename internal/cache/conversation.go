package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/chat"
)

// convPageScript returns the conversation's token (created with ARGV[1] if missing), the page
// stored under it (ARGV[3] .. token .. ARGV[4]) and the viewer's conversation record stored
// under it (ARGV[5] .. token .. ARGV[6]), false for each one missing.
var convPageScript = redis.NewScript(GenerationLua + `return {gen, redis.call('GET', ARGV[3] .. gen .. ARGV[4]), redis.call('GET', ARGV[5] .. gen .. ARGV[6])}
`)

func convPrefix(conv int64) string { return "msg:conv:{" + strconv.FormatInt(conv, 10) + "}:" }

func convSuffix(viewer int64) string { return ":" + strconv.FormatInt(viewer, 10) }

// CachedConversationPages returns per key the conversation as userID sees it, without the read
// position (nil when it is missing or userID is not a member, and then no page), and the page:
// what chat.MemberPageStore's ConversationPagesForMember returns, with ViewerLastReadSeq zero.
// Hits come from Redis in one round trip; misses from the store, in one statement when it is a
// chat.MemberPageStore, stored under the tokens read before. Conversations whose token bump is
// pending, and every key while Redis cannot be read, are read from the store, as MessagePages
// does.
func (h *Store) CachedConversationPages(ctx context.Context, userID int64, keys []chat.PageKey) ([]*chat.Conversation, []chat.Page, error) {
	if h.pendingN.Load() > 0 && h.anyPending(keys) {
		return withoutReadPositions(h.conversationPages(ctx, userID, keys))
	}
	tokens, pages, convs, err := h.readConversationPages(ctx, userID, keys)
	if err != nil {
		if err := h.readFailed(ctx, err); err != nil {
			return nil, nil, err
		}
		return withoutReadPositions(h.conversationPages(ctx, userID, keys))
	}
	outConvs := make([]*chat.Conversation, len(keys))
	outPages := make([]chat.Page, len(keys))
	var missIdx []int
	for i, k := range keys {
		if pages[i] != nil && convs[i] != nil {
			c, errC := decodeConversation(convs[i], k.ConversationID)
			p, errP := decodePage(pages[i], k.ConversationID)
			if errC == nil && errP == nil {
				gen := generation(k.ConversationID, tokens[i])
				c.Generation, p.Generation = gen, gen
				outConvs[i], outPages[i] = &c, p
				h.countHit()
				continue
			}
			h.log.WarnContext(ctx, "history cache: undecodable record", "page", errP, "conversation", errC)
		}
		h.countMiss()
		missIdx = append(missIdx, i)
	}
	if len(missIdx) == 0 {
		return outConvs, outPages, nil
	}
	missKeys := make([]chat.PageKey, len(missIdx))
	missTokens := make([]string, len(missIdx))
	for j, i := range missIdx {
		missKeys[j], missTokens[j] = keys[i], tokens[i]
	}
	// A replica may serve the read once it has replayed what the tokens' writes committed.
	freshConvs, freshPages, err := h.conversationPages(readPosition(ctx, missTokens...), userID, missKeys)
	if err != nil {
		return nil, nil, err
	}
	h.fillConversationPages(ctx, userID, missKeys, missTokens, freshConvs, freshPages)
	for j, i := range missIdx {
		if c := freshConvs[j]; c != nil {
			c.ViewerLastReadSeq = 0 // as on a hit: no token covers it
			gen := generation(keys[i].ConversationID, tokens[i])
			c.Generation = gen
			freshPages[j].Generation = gen
			outConvs[i], outPages[i] = c, freshPages[j]
		}
	}
	return outConvs, outPages, nil
}

// withoutReadPositions clears the read positions of conversations read from the store, so that
// CachedConversationPages answers the same whichever way it read them.
func withoutReadPositions(convs []*chat.Conversation, pages []chat.Page, err error) ([]*chat.Conversation, []chat.Page, error) {
	for _, c := range convs {
		if c != nil {
			c.ViewerLastReadSeq = 0
		}
	}
	return convs, pages, err
}

// anyPending reports whether a key's conversation has a token bump pending.
func (h *Store) anyPending(keys []chat.PageKey) bool {
	h.pendingMu.Lock()
	defer h.pendingMu.Unlock()
	for _, k := range keys {
		if _, ok := h.pending[k.ConversationID]; ok {
			return true
		}
	}
	return false
}

// conversationPages reads the conversations and pages from the store: in one statement over a
// chat.MemberPageStore, else the conversations and then the pages of those userID is a member of.
func (h *Store) conversationPages(ctx context.Context, userID int64, keys []chat.PageKey) ([]*chat.Conversation, []chat.Page, error) {
	if ms, ok := h.Store.(chat.MemberPageStore); ok {
		return ms.ConversationPagesForMember(ctx, userID, keys)
	}
	ids := make([]int64, len(keys))
	for i, k := range keys {
		ids[i] = k.ConversationID
	}
	convs, err := h.Store.ConversationsByIDForMember(ctx, userID, ids)
	if err != nil {
		return nil, nil, err
	}
	var memberKeys []chat.PageKey
	var memberIdx []int
	for i, c := range convs {
		if c != nil {
			memberKeys, memberIdx = append(memberKeys, keys[i]), append(memberIdx, i)
		}
	}
	pages := make([]chat.Page, len(keys))
	if len(memberKeys) > 0 {
		got, err := h.Store.MessagePages(ctx, memberKeys)
		if err != nil {
			return nil, nil, err
		}
		for j, i := range memberIdx {
			pages[i] = got[j]
		}
	}
	return convs, pages, nil
}

// readConversationPages fetches each key's token, stored page and stored conversation record
// for userID in one pipelined round trip.
func (h *Store) readConversationPages(ctx context.Context, userID int64, keys []chat.PageKey) (tokens []string, pages, convs [][]byte, err error) {
	tokens = make([]string, len(keys))
	pages = make([][]byte, len(keys))
	convs = make([][]byte, len(keys))
	genTTL := strconv.Itoa(int(h.cfg.GenerationTTL / time.Second))
	viewer := convSuffix(userID)
	err = h.evalPerKey(ctx, len(keys), 2, func(ctx context.Context, pipe redis.Pipeliner, i int) *redis.Cmd {
		k := keys[i]
		return convPageScript.Eval(ctx, pipe, []string{GenerationKey(k.ConversationID)},
			NewGeneration(), genTTL, pagePrefix(k.ConversationID), pageSuffix(k), convPrefix(k.ConversationID), viewer)
	}, func(i int, token string, stored [][]byte) {
		tokens[i], pages[i], convs[i] = token, stored[0], stored[1]
	})
	return tokens, pages, convs, err
}

// fillConversationPages stores the pages and conversation records of the keys whose
// conversation userID is a member of, under the tokens read before the store read, in one round
// trip. A conversation record lives TTLFirstPage, the shortest of the page TTLs, so that a
// failed bump leaves it stale no longer than the first page.
func (h *Store) fillConversationPages(ctx context.Context, userID int64, keys []chat.PageKey, tokens []string, convs []*chat.Conversation, pages []chat.Page) {
	viewer := convSuffix(userID)
	h.storeFills(ctx, func(ctx context.Context, pipe redis.Pipeliner) int {
		n := 0
		for j, k := range keys {
			if convs[j] == nil {
				continue
			}
			pipe.Set(ctx, pagePrefix(k.ConversationID)+tokens[j]+pageSuffix(k), encodePage(pages[j]), h.pageTTL(k))
			pipe.Set(ctx, convPrefix(k.ConversationID)+tokens[j]+viewer, encodeConversation(convs[j]), h.cfg.TTLFirstPage)
			n++
		}
		return n
	})
}

// A stored conversation record is
//
//	version byte (1), string title, varint created-at (Unix microseconds), uvarint last seq,
//	varint last-message-at (Unix microseconds), uvarint last event seq
//
// with strings as in a stored page. The id is the key's; the viewer's read position is not
// stored (see CachedConversationPages). A record of another version, or a malformed one, is a
// miss.
const convCodecVersion = 1

var errBadConversation = errors.New("history cache: malformed stored conversation")

func encodeConversation(c *chat.Conversation) []byte {
	b := make([]byte, 0, 40+len(c.Title))
	b = append(b, convCodecVersion)
	b = appendString(b, c.Title)
	b = binary.AppendVarint(b, c.CreatedAt.UnixMicro())
	b = binary.AppendUvarint(b, uint64(c.LastSeq))
	b = binary.AppendVarint(b, c.LastMessageAt.UnixMicro())
	b = binary.AppendUvarint(b, uint64(c.LastEventSeq))
	return b
}

func decodeConversation(b []byte, id int64) (chat.Conversation, error) {
	if len(b) < 1 || b[0] != convCodecVersion {
		return chat.Conversation{}, errBadConversation
	}
	d := decoder{s: string(b), pos: 1}
	c := chat.Conversation{ID: id}
	c.Title = d.string()
	c.CreatedAt = time.UnixMicro(d.varint()).UTC()
	c.LastSeq = int64(d.uvarint())
	c.LastMessageAt = time.UnixMicro(d.varint()).UTC()
	c.LastEventSeq = int64(d.uvarint())
	if d.err || d.pos != len(d.s) {
		return chat.Conversation{}, errBadConversation
	}
	return c, nil
}
