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
  /** A page of history by cursor, newest first: pass a page's endCursor as `before` to read older messages. `first`: 1..100. */
  history: MessageConnection;
  id: Scalars['ID']['output'];
  lastMessage?: Maybe<Message>;
  members: Array<User>;
  /** A page of history by offset, newest first. `limit`: 1..100, `offset`: 0..10000. */
  messages: MessagePage;
  title: Scalars['String']['output'];
};


export type ConversationHistoryArgs = {
  before?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type ConversationMessagesArgs = {
  limit?: InputMaybe<Scalars['Int']['input']>;
  offset?: InputMaybe<Scalars['Int']['input']>;
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

export type CreateConversationInput = {
  /** Other members (at most 100). */
  memberIds?: InputMaybe<Array<Scalars['ID']['input']>>;
  /** 1..200 characters after trimming. */
  title: Scalars['String']['input'];
};

export type Message = {
  __typename?: 'Message';
  body: Scalars['String']['output'];
  clientMessageId?: Maybe<Scalars['String']['output']>;
  conversationId: Scalars['ID']['output'];
  createdAt: Scalars['Time']['output'];
  id: Scalars['ID']['output'];
  sender: User;
  /** The message's position in its conversation: 1, 2, 3, … in commit order, without holes. */
  seq: Scalars['Int']['output'];
};

export type MessageConnection = {
  __typename?: 'MessageConnection';
  edges: Array<MessageEdge>;
  pageInfo: PageInfo;
};

export type MessageEdge = {
  __typename?: 'MessageEdge';
  cursor: Scalars['String']['output'];
  node: Message;
};

export type MessagePage = {
  __typename?: 'MessagePage';
  /** Whether older messages follow this page. */
  hasMore: Scalars['Boolean']['output'];
  items: Array<Message>;
  limit: Scalars['Int']['output'];
  offset: Scalars['Int']['output'];
};

export type Mutation = {
  __typename?: 'Mutation';
  /** Creates a conversation; the viewer becomes a member, with the users named in memberIds. */
  createConversation: Conversation;
  /**
   * Sends a message to a conversation the viewer is a member of. Idempotent on
   * (sender, conversation, clientMessageId): a retry returns the original message and adds nothing.
   */
  sendMessage: Message;
};


export type MutationCreateConversationArgs = {
  input: CreateConversationInput;
};


export type MutationSendMessageArgs = {
  input: SendMessageInput;
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
};


export type QueryConversationArgs = {
  id: Scalars['ID']['input'];
};


export type QueryConversationsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
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
  /**
   * Every message of the conversation, in seq order, each once. With afterSeq, first the messages
   * committed after that seq, then live ones.
   */
  messageAdded: Message;
};


export type SubscriptionMessageAddedArgs = {
  afterSeq?: InputMaybe<Scalars['Int']['input']>;
  conversationId: Scalars['ID']['input'];
};

export type User = {
  __typename?: 'User';
  id: Scalars['ID']['output'];
  name: Scalars['String']['output'];
};
