// A small typed client of the Threadline GraphQL API over fetch.
//
// The operations are graph/client/operations/*.graphql (the Go client's too); GraphQL Code
// Generator turns each into a TypedDocumentString that carries its result and variables types
// (src/generated/graphql.ts, `npm run codegen`). `request` sends any of them; the methods below
// wrap the common ones.
import {
  AddReactionDocument,
  ConversationDocument,
  CreateConversationDocument,
  DeleteMessageDocument,
  EditMessageDocument,
  EventsDocument,
  HistoryDocument,
  LatestConversationsDocument,
  MarkReadDocument,
  MessagesPageDocument,
  RemoveReactionDocument,
  SendMessageDocument,
  SidebarDocument,
  UsersDocument,
  ViewerDocument,
  type TypedDocumentString,
} from './generated/graphql.js';
import type { CreateConversationInput, SendMessageInput } from './generated/schema.js';

/** The codes in a GraphQL error's extensions.code (see the README's "Errors"). */
export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'RATE_LIMITED'
  | 'COMPLEXITY_LIMIT_EXCEEDED'
  | 'PERSISTED_QUERY_NOT_FOUND'
  | 'POSITION_EXPIRED'
  | 'FORBIDDEN'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_SERVER_ERROR';

export interface GraphQLErrorItem {
  message: string;
  path?: ReadonlyArray<string | number>;
  locations?: ReadonlyArray<{ line: number; column: number }>;
  extensions?: { code?: ErrorCode; [key: string]: unknown };
}

/** The errors of a response, with the HTTP status and whatever data came with them. */
export class GraphQLRequestError extends Error {
  constructor(
    readonly errors: readonly GraphQLErrorItem[],
    readonly status: number,
    readonly data: unknown,
  ) {
    super(errors.map((e) => e.message).join('; ') || `HTTP ${status}`);
    this.name = 'GraphQLRequestError';
  }

  /** The extensions.code of each error, in order. */
  get codes(): Array<ErrorCode | undefined> {
    return this.errors.map((e) => e.extensions?.code);
  }
}

export interface ClientOptions {
  /** The GraphQL endpoint, such as http://localhost:8080/query. */
  endpoint: string;
  /** A JWT (`threadline token -user N`); omit for an anonymous client. */
  token?: string;
  /** The fetch to use; the global one by default. */
  fetch?: typeof fetch;
}

/** Variables, or nothing for an operation that takes none. */
type VariablesArg<V> = V extends Record<string, never> ? [] : [variables: V];

export class ThreadlineClient {
  readonly #options: ClientOptions;

  constructor(options: ClientOptions) {
    this.#options = options;
  }

  /**
   * Sends an operation by POST and returns its data. GraphQL errors (field errors included)
   * and non-JSON answers throw GraphQLRequestError.
   */
  async request<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    ...[variables]: VariablesArg<TVariables>
  ): Promise<TResult> {
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      // The GraphQL-over-HTTP media type: a 4xx status means the request was not executed.
      Accept: 'application/graphql-response+json, application/json;q=0.9',
    };
    if (this.#options.token) headers['Authorization'] = `Bearer ${this.#options.token}`;
    const res = await (this.#options.fetch ?? fetch)(this.#options.endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: document.toString(), variables: variables ?? {} }),
    });
    let body: { data?: TResult | null; errors?: GraphQLErrorItem[] };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      throw new GraphQLRequestError([{ message: `HTTP ${res.status}: not a GraphQL response` }], res.status, null);
    }
    if ((body.errors && body.errors.length > 0) || body.data == null) {
      throw new GraphQLRequestError(body.errors ?? [], res.status, body.data ?? null);
    }
    return body.data;
  }

  viewer() {
    return this.request(ViewerDocument).then((d) => d.me);
  }

  /** The viewer's latest conversations, each with its newest `limit` messages. */
  latestConversations(first = 5, limit = 10) {
    return this.request(LatestConversationsDocument, { first, limit }).then((d) => d.conversations);
  }

  /** A conversation with its members, or null when it is missing or the viewer is not a member. */
  conversation(id: string) {
    return this.request(ConversationDocument, { id }).then((d) => d.conversation);
  }

  /** A page of history by offset, newest first. */
  messagesPage(conversationId: string, limit = 50, offset = 0) {
    return this.request(MessagesPageDocument, { conversationId, limit, offset }).then((d) => d.conversation?.messages ?? null);
  }

  /** A page of history by cursor, newest first: pass the previous page's endCursor as before. */
  history(conversationId: string, first = 50, before?: string | null) {
    return this.request(HistoryDocument, { conversationId, first, before: before ?? null }).then((d) => d.conversation?.history ?? null);
  }

  /** Sends a message; retrying with the same clientMessageId returns the original. */
  sendMessage(input: SendMessageInput) {
    return this.request(SendMessageDocument, { input }).then((d) => d.sendMessage);
  }

  createConversation(input: CreateConversationInput) {
    return this.request(CreateConversationDocument, { input }).then((d) => d.createConversation);
  }

  /** Replaces the body of a message the viewer sent. */
  editMessage(id: string, body: string) {
    return this.request(EditMessageDocument, { input: { id, body } }).then((d) => d.editMessage);
  }

  /** Deletes a message: it stays as a tombstone, its body "" and its reactions gone. */
  deleteMessage(id: string) {
    return this.request(DeleteMessageDocument, { id }).then((d) => d.deleteMessage);
  }

  /** Adds the viewer's reaction; adding it again changes nothing. */
  addReaction(messageId: string, emoji: string) {
    return this.request(AddReactionDocument, { messageId, emoji }).then((d) => d.addReaction);
  }

  removeReaction(messageId: string, emoji: string) {
    return this.request(RemoveReactionDocument, { messageId, emoji }).then((d) => d.removeReaction);
  }

  /** What happened in a conversation after eventSeq after, oldest first. */
  events(conversationId: string, after = 0, first = 100) {
    return this.request(EventsDocument, { conversationId, after, first }).then((d) => d.conversation?.events ?? null);
  }

  /** The sidebar: the latest conversations with unread counts and last messages, and the total. */
  sidebar(first = 20) {
    return this.request(SidebarDocument, { first });
  }

  /** Moves the viewer's read position forward to seq (never back); answers the unread count. */
  markRead(conversationId: string, seq: number) {
    return this.request(MarkReadDocument, { conversationId, seq }).then((d) => d.markRead);
  }

  /** The user directory: names containing search, by name. */
  users(search: string | null, first = 20, after?: string | null) {
    return this.request(UsersDocument, { search, first, after: after ?? null }).then((d) => d.users);
  }
}
