package graph

// Which fields a subscription may reach have a value that depends on the viewer, and which
// subscription fields hand every subscriber the same event value: the reviewed table that
// subscription fan-out (fanout.go) relies on to share one execution between subscribers.
//
// A field depends on the viewer when two members of the same conversation, looking at the same
// event at the same moment, may be answered differently: it reads something of the viewer's
// own (their reactions, their read position), or what it answers depends on what the viewer
// may see. A field that changes over time but is the same for everyone (User.online,
// Conversation.typing) does not: every subscriber of an event gets the value read when the
// event was executed, as they would have had they been executed in a row.
//
// The table is hand-written because the property is one of a resolver's code, which no
// generator can read off the schema; and it is complete: TestViewerFieldsClassified fails
// for any field that a subscription can reach and that is missing here, so a new field is
// classified by whoever adds it. Until it is, fan-out treats it as depending on the viewer.
// A schema directive would say the same beside each field, but it would publish an execution
// detail in schema.graphql and in every client's generated types.
var viewerFieldsByType = map[string]struct{ perViewer, shared []string }{
	"Conversation": {
		perViewer: []string{
			"unreadCount",       // the viewer's unread messages
			"viewerLastReadSeq", // the viewer's read position
		},
		shared: []string{"createdAt", "events", "history", "historyAround", "id", "lastEventSeq", "lastMessage",
			"members", "memberships", "messages", "readStates", "timeline", "title",
			"typing", // every member typing, the viewer included: the same list for everyone
		},
	},
	// The sidebar's events: the conversation is everyone's (its fields above say which parts
	// are the viewer's), the position the viewer's own stream's.
	"ConversationActivityEvent": {perViewer: []string{"position"}, shared: []string{"conversation"}},
	"ConversationJoinedEvent":   {perViewer: []string{"position"}, shared: []string{"conversation"}},
	"ConversationLeftEvent":     {perViewer: []string{"position"}, shared: []string{"conversationId"}},
	"ReadStateChangedEvent":     {perViewer: []string{"position"}, shared: []string{"conversation"}},
	"ConversationEventPage":     {shared: []string{"hasMore", "items"}},
	"ConversationRenamedEvent": {
		shared: []string{"actor", "at", "conversationId", "eventSeq", "title"},
	},
	"MemberRemovedEvent": {shared: []string{"actor", "at", "conversationId", "eventSeq", "user"}},
	"MembersAddedEvent":  {shared: []string{"actor", "at", "conversationId", "eventSeq", "users"}},
	"Membership":         {shared: []string{"joinedAt", "role", "user"}},
	"Message": {
		shared: []string{"body", "clientMessageId", "conversationId", "createdAt", "deletedAt", "editedAt", "id",
			"reactions", // the counts are everyone's; viewerReacted below is the viewer's
			"sender", "seq", "version"},
	},
	"MessageAddedEvent":   {shared: []string{"actor", "at", "conversationId", "eventSeq", "message"}},
	"MessageDeletedEvent": {shared: []string{"actor", "at", "conversationId", "eventSeq", "message"}},
	"MessageEditedEvent":  {shared: []string{"actor", "at", "conversationId", "eventSeq", "message"}},
	"ReactionChangedEvent": {
		shared: []string{"actor", "added", "at", "conversationId", "emoji", "eventSeq", "message"},
	},
	"MessageConnection": {shared: []string{"edges", "pageInfo"}},
	"MessageEdge":       {shared: []string{"cursor", "node"}},
	"MessagePage":       {shared: []string{"hasMore", "items", "limit", "offset"}},
	"MessageWindow":     {shared: []string{"hasNewer", "hasOlder", "items", "newerCursor", "olderCursor"}},
	"PageInfo":          {shared: []string{"endCursor", "hasNextPage", "hasPreviousPage", "startCursor"}},
	"Reaction": {
		perViewer: []string{"viewerReacted"}, // whether the viewer is among those who reacted
		shared:    []string{"count", "emoji"},
	},
	"ReadState":   {shared: []string{"at", "lastReadSeq", "user"}},
	"TypingEvent": {shared: []string{"typing", "user"}},
	"User": {
		shared: []string{"id", "name",
			"online", // the user's presence, the same for whoever looks
		},
	},
}

// sharedEventFields says, for each subscription field, whether package live (or the typing
// rooms) hands every subscriber of a stream the same event value, which fan-out then executes
// once per operation: messageAdded and conversationEvents (a conversation's events), typing (a
// room's events). viewerEvents makes an event of its own for each stream, with the viewer's
// position: its events are executed per subscriber.
var sharedEventFields = map[string]bool{
	"conversationEvents": true,
	"messageAdded":       true,
	"typing":             true,
	"viewerEvents":       false,
}

// viewerFields maps "Type.field" to whether the field depends on the viewer; a field missing
// from it is not classified.
var viewerFields = func() map[string]bool {
	out := map[string]bool{}
	for typ, c := range viewerFieldsByType {
		for _, f := range c.perViewer {
			out[typ+"."+f] = true
		}
		for _, f := range c.shared {
			out[typ+"."+f] = false
		}
	}
	return out
}()
