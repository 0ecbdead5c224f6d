export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string | number; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** An instant in time, as an RFC 3339 string with the offset (e.g. 2026-11-25T20:05:54.123456Z). */
  Time: { input: string; output: string; }
};

export type Conversation = {
  __typename?: 'Conversation';
  createdAt: Scalars['Time']['output'];
  /** Everything that happened after eventSeq `after`, oldest first: the catch-up call for a client that was offline. `first`: 1..100. */
  events: ConversationEventPage;
  /**
   * A page of history by cursor, newest first: pass a page's endCursor as `before` to read older messages. `first`: 1..100.
   * @deprecated use timeline
   */
  history: MessageConnection;
  /** A window around one message, for permalinks and search hits: up to `before` older and `after` newer messages (0..100 each), newest first. */
  historyAround: MessageWindow;
  id: Scalars['ID']['output'];
  /** The eventSeq of the conversation's latest event (0: none yet). */
  lastEventSeq: Scalars['Int']['output'];
  lastMessage?: Maybe<Message>;
  members: Array<User>;
  /** The members, with their roles, ordered by user id. */
  memberships: Array<Membership>;
  /** A page of history by offset, newest first. `limit`: 1..100, `offset`: 0..10000. */
  messages: MessagePage;
  /** Each member's read position (read receipts). */
  readStates: Array<ReadState>;
  /** History as a Relay connection by the book: newest first; first/after go toward older messages, last/before toward newer ones. */
  timeline: MessageConnection;
  title: Scalars['String']['output'];
  /** Members typing now (ephemeral). */
  typing: Array<User>;
  /** Messages after viewerLastReadSeq that the viewer did not send and that are not deleted. */
  unreadCount: Scalars['Int']['output'];
  /** The seq of the last message the viewer has read (0: none). */
  viewerLastReadSeq: Scalars['Int']['output'];
};


export type ConversationEventsArgs = {
  after?: InputMaybe<Scalars['Int']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type ConversationHistoryArgs = {
  before?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type ConversationHistoryAroundArgs = {
  after?: InputMaybe<Scalars['Int']['input']>;
  before?: InputMaybe<Scalars['Int']['input']>;
  seq: Scalars['Int']['input'];
};


export type ConversationMessagesArgs = {
  limit?: InputMaybe<Scalars['Int']['input']>;
  offset?: InputMaybe<Scalars['Int']['input']>;
};


export type ConversationTimelineArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  before?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  last?: InputMaybe<Scalars['Int']['input']>;
};

/** A new message, an edit, a deletion or a rename: the conversation carries its lastMessage and unreadCount. */
export type ConversationActivityEvent = ViewerEvent & {
  __typename?: 'ConversationActivityEvent';
  conversation: Conversation;
  position: Scalars['String']['output'];
};

export type ConversationConnection = {
  __typename?: 'ConversationConnection';
  edges: Array<ConversationEdge>;
  pageInfo: PageInfo;
};

export type ConversationEdge = {
  __typename?: 'ConversationEdge';
  cursor: Scalars['String']['output'];
  node: Conversation;
};

/** Something that happened in a conversation. eventSeq numbers a conversation's events 1, 2, 3, … in commit order, without holes. */
export type ConversationEvent = {
  actor: User;
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  eventSeq: Scalars['Int']['output'];
};

export type ConversationEventPage = {
  __typename?: 'ConversationEventPage';
  hasMore: Scalars['Boolean']['output'];
  items: Array<ConversationEvent>;
};

/** The viewer became a member of the conversation. */
export type ConversationJoinedEvent = ViewerEvent & {
  __typename?: 'ConversationJoinedEvent';
  conversation: Conversation;
  position: Scalars['String']['output'];
};

/** The viewer is no longer a member of the conversation (removed, or left on another device). */
export type ConversationLeftEvent = ViewerEvent & {
  __typename?: 'ConversationLeftEvent';
  conversationId: Scalars['ID']['output'];
  position: Scalars['String']['output'];
};

export type ConversationRenamedEvent = ConversationEvent & {
  __typename?: 'ConversationRenamedEvent';
  actor: User;
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  eventSeq: Scalars['Int']['output'];
  title: Scalars['String']['output'];
};

export type CreateConversationInput = {
  /** Other members (at most 100). */
  memberIds?: InputMaybe<Array<Scalars['ID']['input']>>;
  /** 1..200 characters after trimming. */
  title: Scalars['String']['input'];
};

export type EditMessageInput = {
  /** 1..4000 characters after trimming. */
  body: Scalars['String']['input'];
  id: Scalars['ID']['input'];
};

/** A member was removed, or left (then the actor is the user). */
export type MemberRemovedEvent = ConversationEvent & {
  __typename?: 'MemberRemovedEvent';
  actor: User;
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  eventSeq: Scalars['Int']['output'];
  user: User;
};

export type MemberRole =
  | 'MEMBER'
  | 'OWNER';

export type MembersAddedEvent = ConversationEvent & {
  __typename?: 'MembersAddedEvent';
  actor: User;
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  eventSeq: Scalars['Int']['output'];
  users: Array<User>;
};

export type Membership = {
  __typename?: 'Membership';
  joinedAt: Scalars['Time']['output'];
  role: MemberRole;
  user: User;
};

export type Message = {
  __typename?: 'Message';
  body: Scalars['String']['output'];
  clientMessageId?: Maybe<Scalars['String']['output']>;
  conversationId: Scalars['ID']['output'];
  createdAt: Scalars['Time']['output'];
  /** When the message was deleted: its body is "" and its reactions are empty from then on. */
  deletedAt?: Maybe<Scalars['Time']['output']>;
  /** When the body was last replaced; null until edited. */
  editedAt?: Maybe<Scalars['Time']['output']>;
  id: Scalars['ID']['output'];
  /** Grouped by emoji, most used first. */
  reactions: Array<Reaction>;
  sender: User;
  /** The message's position in its conversation: 1, 2, 3, … in commit order, without holes. */
  seq: Scalars['Int']['output'];
  /** 1 when sent, +1 for each edit or delete. */
  version: Scalars['Int']['output'];
};

/** A message was sent. Its message is as it is now (version says how recent). */
export type MessageAddedEvent = ConversationEvent & {
  __typename?: 'MessageAddedEvent';
  actor: User;
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  eventSeq: Scalars['Int']['output'];
  message: Message;
};

export type MessageConnection = {
  __typename?: 'MessageConnection';
  edges: Array<MessageEdge>;
  pageInfo: PageInfo;
};

export type MessageDeletedEvent = ConversationEvent & {
  __typename?: 'MessageDeletedEvent';
  actor: User;
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  eventSeq: Scalars['Int']['output'];
  message: Message;
};

export type MessageEdge = {
  __typename?: 'MessageEdge';
  cursor: Scalars['String']['output'];
  node: Message;
};

export type MessageEditedEvent = ConversationEvent & {
  __typename?: 'MessageEditedEvent';
  actor: User;
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  eventSeq: Scalars['Int']['output'];
  message: Message;
};

export type MessagePage = {
  __typename?: 'MessagePage';
  /** Whether older messages follow this page. */
  hasMore: Scalars['Boolean']['output'];
  items: Array<Message>;
  limit: Scalars['Int']['output'];
  offset: Scalars['Int']['output'];
};

export type MessageSearchConnection = {
  __typename?: 'MessageSearchConnection';
  edges: Array<MessageSearchEdge>;
  pageInfo: PageInfo;
};

export type MessageSearchEdge = {
  __typename?: 'MessageSearchEdge';
  cursor: Scalars['String']['output'];
  node: Message;
  /** The part of the body that matched, the matching words between ** and **. */
  snippet: Scalars['String']['output'];
};

export type MessageWindow = {
  __typename?: 'MessageWindow';
  hasNewer: Scalars['Boolean']['output'];
  hasOlder: Scalars['Boolean']['output'];
  /** Newest first. */
  items: Array<Message>;
  /** Pass as timeline(before:) for the messages newer than the window. */
  newerCursor?: Maybe<Scalars['String']['output']>;
  /** Pass as timeline(after:) for the messages older than the window. */
  olderCursor?: Maybe<Scalars['String']['output']>;
};

export type Mutation = {
  __typename?: 'Mutation';
  /** Adds members (at most 100 at once); any member may; existing members are ignored. */
  addMembers: Conversation;
  /** Adds the viewer's reaction (1..32 characters; at most 20 different per message); idempotent. */
  addReaction: Message;
  /** Creates a conversation; the viewer becomes a member, with the users named in memberIds. */
  createConversation: Conversation;
  /** Deletes a message (the sender or the conversation's owner); deleting it again changes nothing. */
  deleteMessage: Message;
  /** Replaces the body of a message the viewer sent; not on a deleted message. */
  editMessage: Message;
  /** The viewer leaves; an owner who leaves hands ownership to the longest-standing member. */
  leaveConversation: Scalars['Boolean']['output'];
  /** Moves the viewer's read position forward (never backward); answers the conversation with its new unreadCount. */
  markRead: Conversation;
  /** Removes a member; the owner only. */
  removeMember: Conversation;
  /** Removes the viewer's reaction; idempotent. */
  removeReaction: Message;
  /** Gives the conversation a new title (1..200 characters after trimming); any member may. */
  renameConversation: Conversation;
  /**
   * Sends a message to a conversation the viewer is a member of. Idempotent on
   * (sender, conversation, clientMessageId): a retry returns the original message and adds nothing.
   */
  sendMessage: Message;
  /** Ephemeral: no PostgreSQL write; expires after 6 s unless repeated. */
  setTyping: Scalars['Boolean']['output'];
};


export type MutationAddMembersArgs = {
  conversationId: Scalars['ID']['input'];
  userIds: Array<Scalars['ID']['input']>;
};


export type MutationAddReactionArgs = {
  emoji: Scalars['String']['input'];
  messageId: Scalars['ID']['input'];
};


export type MutationCreateConversationArgs = {
  input: CreateConversationInput;
};


export type MutationDeleteMessageArgs = {
  id: Scalars['ID']['input'];
};


export type MutationEditMessageArgs = {
  input: EditMessageInput;
};


export type MutationLeaveConversationArgs = {
  conversationId: Scalars['ID']['input'];
};


export type MutationMarkReadArgs = {
  conversationId: Scalars['ID']['input'];
  seq: Scalars['Int']['input'];
};


export type MutationRemoveMemberArgs = {
  conversationId: Scalars['ID']['input'];
  userId: Scalars['ID']['input'];
};


export type MutationRemoveReactionArgs = {
  emoji: Scalars['String']['input'];
  messageId: Scalars['ID']['input'];
};


export type MutationRenameConversationArgs = {
  conversationId: Scalars['ID']['input'];
  title: Scalars['String']['input'];
};


export type MutationSendMessageArgs = {
  input: SendMessageInput;
};


export type MutationSetTypingArgs = {
  conversationId: Scalars['ID']['input'];
  typing: Scalars['Boolean']['input'];
};

export type PageInfo = {
  __typename?: 'PageInfo';
  endCursor?: Maybe<Scalars['String']['output']>;
  hasNextPage: Scalars['Boolean']['output'];
  hasPreviousPage: Scalars['Boolean']['output'];
  startCursor?: Maybe<Scalars['String']['output']>;
};

export type Query = {
  __typename?: 'Query';
  /** A conversation of the viewer's. Null when it does not exist or the viewer is not a member. */
  conversation?: Maybe<Conversation>;
  /** The viewer's conversations, latest activity first. `first`: 1..100. */
  conversations: ConversationConnection;
  /** The authenticated viewer. */
  me: User;
  /** Full-text search over the viewer's conversations (or one of them); deleted messages never match. Newest first. `first`: 1..100. */
  searchMessages: MessageSearchConnection;
  /** Total unread over the viewer's conversations (the app badge). */
  unreadTotal: Scalars['Int']['output'];
  /** Users whose name starts with or contains `search` (case-insensitive), for a new-conversation picker. `first`: 1..100. */
  users: UserConnection;
};


export type QueryConversationArgs = {
  id: Scalars['ID']['input'];
};


export type QueryConversationsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type QuerySearchMessagesArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  conversationId?: InputMaybe<Scalars['ID']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  query: Scalars['String']['input'];
};


export type QueryUsersArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  search?: InputMaybe<Scalars['String']['input']>;
};

export type Reaction = {
  __typename?: 'Reaction';
  count: Scalars['Int']['output'];
  emoji: Scalars['String']['output'];
  /** Whether the viewer is among those who reacted with this emoji. */
  viewerReacted: Scalars['Boolean']['output'];
};

export type ReactionChangedEvent = ConversationEvent & {
  __typename?: 'ReactionChangedEvent';
  actor: User;
  added: Scalars['Boolean']['output'];
  at: Scalars['Time']['output'];
  conversationId: Scalars['ID']['output'];
  emoji: Scalars['String']['output'];
  eventSeq: Scalars['Int']['output'];
  message: Message;
};

export type ReadState = {
  __typename?: 'ReadState';
  /** When the member last moved their read position; null until they did. */
  at?: Maybe<Scalars['Time']['output']>;
  lastReadSeq: Scalars['Int']['output'];
  user: User;
};

/** The viewer read the conversation on another device. */
export type ReadStateChangedEvent = ViewerEvent & {
  __typename?: 'ReadStateChangedEvent';
  conversation: Conversation;
  position: Scalars['String']['output'];
};

export type SendMessageInput = {
  /** 1..4000 characters after trimming. */
  body: Scalars['String']['input'];
  /** A client-chosen id (1..100 characters) that makes retries safe. */
  clientMessageId?: InputMaybe<Scalars['String']['input']>;
  conversationId: Scalars['ID']['input'];
};

export type Subscription = {
  __typename?: 'Subscription';
  /** Every event of the conversation in eventSeq order, each once; with afterEventSeq, first the ones after it. */
  conversationEvents: ConversationEvent;
  /**
   * Every message of the conversation, in seq order, each once. With afterSeq, first the messages
   * committed after that seq, then live ones.
   */
  messageAdded: Message;
  typing: TypingEvent;
  /** The sidebar: one stream per viewer over all their conversations, resumable from `after` (an opaque position). */
  viewerEvents: ViewerEvent;
};


export type SubscriptionConversationEventsArgs = {
  afterEventSeq?: InputMaybe<Scalars['Int']['input']>;
  conversationId: Scalars['ID']['input'];
};


export type SubscriptionMessageAddedArgs = {
  afterSeq?: InputMaybe<Scalars['Int']['input']>;
  conversationId: Scalars['ID']['input'];
};


export type SubscriptionTypingArgs = {
  conversationId: Scalars['ID']['input'];
};


export type SubscriptionViewerEventsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
};

export type TypingEvent = {
  __typename?: 'TypingEvent';
  typing: Scalars['Boolean']['output'];
  user: User;
};

export type User = {
  __typename?: 'User';
  id: Scalars['ID']['output'];
  name: Scalars['String']['output'];
  /** An open connection or a request within the last 60 s. */
  online: Scalars['Boolean']['output'];
};

export type UserConnection = {
  __typename?: 'UserConnection';
  edges: Array<UserEdge>;
  pageInfo: PageInfo;
};

export type UserEdge = {
  __typename?: 'UserEdge';
  cursor: Scalars['String']['output'];
  node: User;
};

/** Something the viewer's sidebar must show. Pass the position of the last one received as viewerEvents(after:) to resume exactly. */
export type ViewerEvent = {
  position: Scalars['String']['output'];
};
