/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type * as Types from './schema.js';

import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type ConversationsQueryVariables = Exact<{
  first?: number | null | undefined;
  after?: string | null | undefined;
}>;


export type ConversationsQuery = { conversations: { edges: Array<{ cursor: string, node: { id: string, title: string, createdAt: string, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } | null } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } };

export type LatestConversationsQueryVariables = Exact<{
  first?: number | null | undefined;
  limit?: number | null | undefined;
}>;


export type LatestConversationsQuery = { conversations: { edges: Array<{ node: { id: string, title: string, createdAt: string, messages: { hasMore: boolean, items: Array<{ id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } }> }, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } | null } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } };

export type ConversationQueryVariables = Exact<{
  id: string | number;
}>;


export type ConversationQuery = { conversation: { id: string, title: string, createdAt: string, members: Array<{ id: string, name: string }>, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } | null } | null };

export type CreateConversationMutationVariables = Exact<{
  input: Types.CreateConversationInput;
}>;


export type CreateConversationMutation = { createConversation: { id: string, title: string, createdAt: string, members: Array<{ id: string, name: string }>, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } | null } };

export type UserFieldsFragment = { id: string, name: string };

export type MessageFieldsFragment = { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } };

export type PageInfoFieldsFragment = { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null };

export type ConversationSummaryFragment = { id: string, title: string, createdAt: string, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } | null };

export type MessagesPageQueryVariables = Exact<{
  conversationId: string | number;
  limit?: number | null | undefined;
  offset?: number | null | undefined;
}>;


export type MessagesPageQuery = { conversation: { id: string, messages: { limit: number, offset: number, hasMore: boolean, items: Array<{ id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } }> } } | null };

export type HistoryQueryVariables = Exact<{
  conversationId: string | number;
  first?: number | null | undefined;
  before?: string | null | undefined;
}>;


export type HistoryQuery = { conversation: { id: string, history: { edges: Array<{ cursor: string, node: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } } | null };

export type SendMessageMutationVariables = Exact<{
  input: Types.SendMessageInput;
}>;


export type SendMessageMutation = { sendMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } };

export type MessageAddedSubscriptionVariables = Exact<{
  conversationId: string | number;
  afterSeq?: number | null | undefined;
}>;


export type MessageAddedSubscription = { messageAdded: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, sender: { id: string, name: string } } };

export type ViewerQueryVariables = Exact<{ [key: string]: never; }>;


export type ViewerQuery = { me: { id: string, name: string } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const PageInfoFieldsFragmentDoc = new TypedDocumentString(`
    fragment PageInfoFields on PageInfo {
  hasNextPage
  hasPreviousPage
  startCursor
  endCursor
}
    `, {"fragmentName":"PageInfoFields"}) as unknown as TypedDocumentString<PageInfoFieldsFragment, unknown>;
export const UserFieldsFragmentDoc = new TypedDocumentString(`
    fragment UserFields on User {
  id
  name
}
    `, {"fragmentName":"UserFields"}) as unknown as TypedDocumentString<UserFieldsFragment, unknown>;
export const MessageFieldsFragmentDoc = new TypedDocumentString(`
    fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}
    fragment UserFields on User {
  id
  name
}`, {"fragmentName":"MessageFields"}) as unknown as TypedDocumentString<MessageFieldsFragment, unknown>;
export const ConversationSummaryFragmentDoc = new TypedDocumentString(`
    fragment ConversationSummary on Conversation {
  id
  title
  createdAt
  lastMessage {
    ...MessageFields
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}`, {"fragmentName":"ConversationSummary"}) as unknown as TypedDocumentString<ConversationSummaryFragment, unknown>;
export const ConversationsDocument = new TypedDocumentString(`
    query Conversations($first: Int, $after: String) {
  conversations(first: $first, after: $after) {
    edges {
      cursor
      node {
        ...ConversationSummary
      }
    }
    pageInfo {
      ...PageInfoFields
    }
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}
fragment PageInfoFields on PageInfo {
  hasNextPage
  hasPreviousPage
  startCursor
  endCursor
}
fragment ConversationSummary on Conversation {
  id
  title
  createdAt
  lastMessage {
    ...MessageFields
  }
}`) as unknown as TypedDocumentString<ConversationsQuery, ConversationsQueryVariables>;
export const LatestConversationsDocument = new TypedDocumentString(`
    query LatestConversations($first: Int, $limit: Int) {
  conversations(first: $first) {
    edges {
      node {
        ...ConversationSummary
        messages(limit: $limit, offset: 0) {
          items {
            ...MessageFields
          }
          hasMore
        }
      }
    }
    pageInfo {
      ...PageInfoFields
    }
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}
fragment PageInfoFields on PageInfo {
  hasNextPage
  hasPreviousPage
  startCursor
  endCursor
}
fragment ConversationSummary on Conversation {
  id
  title
  createdAt
  lastMessage {
    ...MessageFields
  }
}`) as unknown as TypedDocumentString<LatestConversationsQuery, LatestConversationsQueryVariables>;
export const ConversationDocument = new TypedDocumentString(`
    query Conversation($id: ID!) {
  conversation(id: $id) {
    ...ConversationSummary
    members {
      ...UserFields
    }
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}
fragment ConversationSummary on Conversation {
  id
  title
  createdAt
  lastMessage {
    ...MessageFields
  }
}`) as unknown as TypedDocumentString<ConversationQuery, ConversationQueryVariables>;
export const CreateConversationDocument = new TypedDocumentString(`
    mutation CreateConversation($input: CreateConversationInput!) {
  createConversation(input: $input) {
    ...ConversationSummary
    members {
      ...UserFields
    }
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}
fragment ConversationSummary on Conversation {
  id
  title
  createdAt
  lastMessage {
    ...MessageFields
  }
}`) as unknown as TypedDocumentString<CreateConversationMutation, CreateConversationMutationVariables>;
export const MessagesPageDocument = new TypedDocumentString(`
    query MessagesPage($conversationId: ID!, $limit: Int, $offset: Int) {
  conversation(id: $conversationId) {
    id
    messages(limit: $limit, offset: $offset) {
      items {
        ...MessageFields
      }
      limit
      offset
      hasMore
    }
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<MessagesPageQuery, MessagesPageQueryVariables>;
export const HistoryDocument = new TypedDocumentString(`
    query History($conversationId: ID!, $first: Int, $before: String) {
  conversation(id: $conversationId) {
    id
    history(first: $first, before: $before) {
      edges {
        cursor
        node {
          ...MessageFields
        }
      }
      pageInfo {
        ...PageInfoFields
      }
    }
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}
fragment PageInfoFields on PageInfo {
  hasNextPage
  hasPreviousPage
  startCursor
  endCursor
}`) as unknown as TypedDocumentString<HistoryQuery, HistoryQueryVariables>;
export const SendMessageDocument = new TypedDocumentString(`
    mutation SendMessage($input: SendMessageInput!) {
  sendMessage(input: $input) {
    ...MessageFields
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<SendMessageMutation, SendMessageMutationVariables>;
export const MessageAddedDocument = new TypedDocumentString(`
    subscription MessageAdded($conversationId: ID!, $afterSeq: Int) {
  messageAdded(conversationId: $conversationId, afterSeq: $afterSeq) {
    ...MessageFields
  }
}
    fragment UserFields on User {
  id
  name
}
fragment MessageFields on Message {
  id
  seq
  conversationId
  body
  createdAt
  clientMessageId
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<MessageAddedSubscription, MessageAddedSubscriptionVariables>;
export const ViewerDocument = new TypedDocumentString(`
    query Viewer {
  me {
    ...UserFields
  }
}
    fragment UserFields on User {
  id
  name
}`) as unknown as TypedDocumentString<ViewerQuery, ViewerQueryVariables>;