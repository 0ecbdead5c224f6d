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


export type ConversationsQuery = { conversations: { edges: Array<{ cursor: string, node: { id: string, title: string, createdAt: string, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } | null } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } };

export type LatestConversationsQueryVariables = Exact<{
  first?: number | null | undefined;
  limit?: number | null | undefined;
}>;


export type LatestConversationsQuery = { conversations: { edges: Array<{ node: { id: string, title: string, createdAt: string, messages: { hasMore: boolean, items: Array<{ id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }> }, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } | null } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } };

export type ConversationQueryVariables = Exact<{
  id: string | number;
}>;


export type ConversationQuery = { conversation: { lastEventSeq: number, id: string, title: string, createdAt: string, members: Array<{ id: string, name: string }>, memberships: Array<{ role: Types.MemberRole, joinedAt: string, user: { id: string, name: string } }>, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } | null } | null };

export type CreateConversationMutationVariables = Exact<{
  input: Types.CreateConversationInput;
}>;


export type CreateConversationMutation = { createConversation: { id: string, title: string, createdAt: string, members: Array<{ id: string, name: string }>, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } | null } };

export type AddMembersMutationVariables = Exact<{
  conversationId: string | number;
  userIds: Array<string | number> | string | number;
}>;


export type AddMembersMutation = { addMembers: { id: string, members: Array<{ id: string, name: string }> } };

export type RemoveMemberMutationVariables = Exact<{
  conversationId: string | number;
  userId: string | number;
}>;


export type RemoveMemberMutation = { removeMember: { id: string, members: Array<{ id: string, name: string }> } };

export type LeaveConversationMutationVariables = Exact<{
  conversationId: string | number;
}>;


export type LeaveConversationMutation = { leaveConversation: boolean };

export type RenameConversationMutationVariables = Exact<{
  conversationId: string | number;
  title: string;
}>;


export type RenameConversationMutation = { renameConversation: { id: string, title: string } };

export type UserFieldsFragment = { id: string, name: string };

export type MessageFieldsFragment = { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } };

export type PageInfoFieldsFragment = { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null };

export type MessagePageFragment = { edges: Array<{ cursor: string, node: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } };

export type ConversationSummaryFragment = { id: string, title: string, createdAt: string, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } | null };

type EventFields_ConversationRenamedEvent_Fragment = { __typename: 'ConversationRenamedEvent', title: string, eventSeq: number, conversationId: string, at: string, actor: { id: string, name: string } };

type EventFields_MemberRemovedEvent_Fragment = { __typename: 'MemberRemovedEvent', eventSeq: number, conversationId: string, at: string, user: { id: string, name: string }, actor: { id: string, name: string } };

type EventFields_MembersAddedEvent_Fragment = { __typename: 'MembersAddedEvent', eventSeq: number, conversationId: string, at: string, users: Array<{ id: string, name: string }>, actor: { id: string, name: string } };

type EventFields_MessageAddedEvent_Fragment = { __typename: 'MessageAddedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } };

type EventFields_MessageDeletedEvent_Fragment = { __typename: 'MessageDeletedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } };

type EventFields_MessageEditedEvent_Fragment = { __typename: 'MessageEditedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } };

type EventFields_ReactionChangedEvent_Fragment = { __typename: 'ReactionChangedEvent', emoji: string, added: boolean, eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } };

export type EventFieldsFragment =
  | EventFields_ConversationRenamedEvent_Fragment
  | EventFields_MemberRemovedEvent_Fragment
  | EventFields_MembersAddedEvent_Fragment
  | EventFields_MessageAddedEvent_Fragment
  | EventFields_MessageDeletedEvent_Fragment
  | EventFields_MessageEditedEvent_Fragment
  | EventFields_ReactionChangedEvent_Fragment
;

export type MessagesPageQueryVariables = Exact<{
  conversationId: string | number;
  limit?: number | null | undefined;
  offset?: number | null | undefined;
}>;


export type MessagesPageQuery = { conversation: { id: string, messages: { limit: number, offset: number, hasMore: boolean, items: Array<{ id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }> } } | null };

export type HistoryQueryVariables = Exact<{
  conversationId: string | number;
  first?: number | null | undefined;
  before?: string | null | undefined;
}>;


export type HistoryQuery = { conversation: { id: string, history: { edges: Array<{ cursor: string, node: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } } | null };

export type TimelineQueryVariables = Exact<{
  conversationId: string | number;
  first?: number | null | undefined;
  after?: string | null | undefined;
  last?: number | null | undefined;
  before?: string | null | undefined;
}>;


export type TimelineQuery = { conversation: { id: string, timeline: { edges: Array<{ cursor: string, node: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } } | null };

export type HistoryAroundQueryVariables = Exact<{
  conversationId: string | number;
  seq: number;
  before?: number | null | undefined;
  after?: number | null | undefined;
}>;


export type HistoryAroundQuery = { conversation: { id: string, historyAround: { hasOlder: boolean, hasNewer: boolean, olderCursor: string | null, newerCursor: string | null, items: Array<{ id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }> } } | null };

export type MessageAddedSubscriptionVariables = Exact<{
  conversationId: string | number;
  afterSeq?: number | null | undefined;
}>;


export type MessageAddedSubscription = { messageAdded: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } };

export type EventsQueryVariables = Exact<{
  conversationId: string | number;
  after?: number | null | undefined;
  first?: number | null | undefined;
}>;


export type EventsQuery = { conversation: { id: string, lastEventSeq: number, events: { hasMore: boolean, items: Array<
        | { __typename: 'ConversationRenamedEvent', title: string, eventSeq: number, conversationId: string, at: string, actor: { id: string, name: string } }
        | { __typename: 'MemberRemovedEvent', eventSeq: number, conversationId: string, at: string, user: { id: string, name: string }, actor: { id: string, name: string } }
        | { __typename: 'MembersAddedEvent', eventSeq: number, conversationId: string, at: string, users: Array<{ id: string, name: string }>, actor: { id: string, name: string } }
        | { __typename: 'MessageAddedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
        | { __typename: 'MessageDeletedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
        | { __typename: 'MessageEditedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
        | { __typename: 'ReactionChangedEvent', emoji: string, added: boolean, eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
      > } } | null };

export type ConversationEventsSubscriptionVariables = Exact<{
  conversationId: string | number;
  afterEventSeq?: number | null | undefined;
}>;


export type ConversationEventsSubscription = { conversationEvents:
    | { __typename: 'ConversationRenamedEvent', title: string, eventSeq: number, conversationId: string, at: string, actor: { id: string, name: string } }
    | { __typename: 'MemberRemovedEvent', eventSeq: number, conversationId: string, at: string, user: { id: string, name: string }, actor: { id: string, name: string } }
    | { __typename: 'MembersAddedEvent', eventSeq: number, conversationId: string, at: string, users: Array<{ id: string, name: string }>, actor: { id: string, name: string } }
    | { __typename: 'MessageAddedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
    | { __typename: 'MessageDeletedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
    | { __typename: 'MessageEditedEvent', eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
    | { __typename: 'ReactionChangedEvent', emoji: string, added: boolean, eventSeq: number, conversationId: string, at: string, message: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }, actor: { id: string, name: string } }
   };

export type MessageWindowFieldsFragment = { hasOlder: boolean, hasNewer: boolean, olderCursor: string | null, newerCursor: string | null, items: Array<{ id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } }> };

export type ReadStateFieldsFragment = { id: string, unreadCount: number, viewerLastReadSeq: number };

export type MarkReadMutationVariables = Exact<{
  conversationId: string | number;
  seq: number;
}>;


export type MarkReadMutation = { markRead: { id: string, unreadCount: number, viewerLastReadSeq: number } };

export type SendMessageMutationVariables = Exact<{
  input: Types.SendMessageInput;
}>;


export type SendMessageMutation = { sendMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } };

export type EditMessageMutationVariables = Exact<{
  input: Types.EditMessageInput;
}>;


export type EditMessageMutation = { editMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } };

export type DeleteMessageMutationVariables = Exact<{
  id: string | number;
}>;


export type DeleteMessageMutation = { deleteMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } };

export type AddReactionMutationVariables = Exact<{
  messageId: string | number;
  emoji: string;
}>;


export type AddReactionMutation = { addReaction: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } };

export type RemoveReactionMutationVariables = Exact<{
  messageId: string | number;
  emoji: string;
}>;


export type RemoveReactionMutation = { removeReaction: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } };

export type SidebarQueryVariables = Exact<{
  first?: number | null | undefined;
}>;


export type SidebarQuery = { unreadTotal: number, conversations: { edges: Array<{ node: { id: string, title: string, unreadCount: number, viewerLastReadSeq: number, lastMessage: { id: string, seq: number, conversationId: string, body: string, createdAt: string, clientMessageId: string | null, editedAt: string | null, deletedAt: string | null, version: number, reactions: Array<{ emoji: string, count: number, viewerReacted: boolean }>, sender: { id: string, name: string } } | null } }> } };

export type ViewerEventsSubscriptionVariables = Exact<{
  after?: string | null | undefined;
}>;


export type ViewerEventsSubscription = { viewerEvents:
    | { __typename: 'ConversationActivityEvent', position: string, conversation: { id: string, title: string, unreadCount: number, lastMessage: { seq: number, body: string, sender: { id: string, name: string } } | null } }
    | { __typename: 'ConversationJoinedEvent', position: string, conversation: { id: string, title: string, unreadCount: number } }
    | { __typename: 'ConversationLeftEvent', conversationId: string, position: string }
    | { __typename: 'ReadStateChangedEvent', position: string, conversation: { id: string, unreadCount: number, viewerLastReadSeq: number } }
   };

export type ViewerQueryVariables = Exact<{ [key: string]: never; }>;


export type ViewerQuery = { me: { id: string, name: string } };

export type UsersQueryVariables = Exact<{
  search?: string | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
}>;


export type UsersQuery = { users: { edges: Array<{ cursor: string, node: { id: string, name: string } }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } };

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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}
    fragment UserFields on User {
  id
  name
}`, {"fragmentName":"MessageFields"}) as unknown as TypedDocumentString<MessageFieldsFragment, unknown>;
export const PageInfoFieldsFragmentDoc = new TypedDocumentString(`
    fragment PageInfoFields on PageInfo {
  hasNextPage
  hasPreviousPage
  startCursor
  endCursor
}
    `, {"fragmentName":"PageInfoFields"}) as unknown as TypedDocumentString<PageInfoFieldsFragment, unknown>;
export const MessagePageFragmentDoc = new TypedDocumentString(`
    fragment MessagePage on MessageConnection {
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}
fragment PageInfoFields on PageInfo {
  hasNextPage
  hasPreviousPage
  startCursor
  endCursor
}`, {"fragmentName":"MessagePage"}) as unknown as TypedDocumentString<MessagePageFragment, unknown>;
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`, {"fragmentName":"ConversationSummary"}) as unknown as TypedDocumentString<ConversationSummaryFragment, unknown>;
export const EventFieldsFragmentDoc = new TypedDocumentString(`
    fragment EventFields on ConversationEvent {
  __typename
  eventSeq
  conversationId
  at
  actor {
    ...UserFields
  }
  ... on MessageAddedEvent {
    message {
      ...MessageFields
    }
  }
  ... on MessageEditedEvent {
    message {
      ...MessageFields
    }
  }
  ... on MessageDeletedEvent {
    message {
      ...MessageFields
    }
  }
  ... on ReactionChangedEvent {
    message {
      ...MessageFields
    }
    emoji
    added
  }
  ... on MembersAddedEvent {
    users {
      ...UserFields
    }
  }
  ... on MemberRemovedEvent {
    user {
      ...UserFields
    }
  }
  ... on ConversationRenamedEvent {
    title
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`, {"fragmentName":"EventFields"}) as unknown as TypedDocumentString<EventFieldsFragment, unknown>;
export const MessageWindowFieldsFragmentDoc = new TypedDocumentString(`
    fragment MessageWindowFields on MessageWindow {
  items {
    ...MessageFields
  }
  hasOlder
  hasNewer
  olderCursor
  newerCursor
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`, {"fragmentName":"MessageWindowFields"}) as unknown as TypedDocumentString<MessageWindowFieldsFragment, unknown>;
export const ReadStateFieldsFragmentDoc = new TypedDocumentString(`
    fragment ReadStateFields on Conversation {
  id
  unreadCount
  viewerLastReadSeq
}
    `, {"fragmentName":"ReadStateFields"}) as unknown as TypedDocumentString<ReadStateFieldsFragment, unknown>;
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
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
    memberships {
      user {
        ...UserFields
      }
      role
      joinedAt
    }
    lastEventSeq
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
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
export const AddMembersDocument = new TypedDocumentString(`
    mutation AddMembers($conversationId: ID!, $userIds: [ID!]!) {
  addMembers(conversationId: $conversationId, userIds: $userIds) {
    id
    members {
      ...UserFields
    }
  }
}
    fragment UserFields on User {
  id
  name
}`) as unknown as TypedDocumentString<AddMembersMutation, AddMembersMutationVariables>;
export const RemoveMemberDocument = new TypedDocumentString(`
    mutation RemoveMember($conversationId: ID!, $userId: ID!) {
  removeMember(conversationId: $conversationId, userId: $userId) {
    id
    members {
      ...UserFields
    }
  }
}
    fragment UserFields on User {
  id
  name
}`) as unknown as TypedDocumentString<RemoveMemberMutation, RemoveMemberMutationVariables>;
export const LeaveConversationDocument = new TypedDocumentString(`
    mutation LeaveConversation($conversationId: ID!) {
  leaveConversation(conversationId: $conversationId)
}
    `) as unknown as TypedDocumentString<LeaveConversationMutation, LeaveConversationMutationVariables>;
export const RenameConversationDocument = new TypedDocumentString(`
    mutation RenameConversation($conversationId: ID!, $title: String!) {
  renameConversation(conversationId: $conversationId, title: $title) {
    id
    title
  }
}
    `) as unknown as TypedDocumentString<RenameConversationMutation, RenameConversationMutationVariables>;
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<MessagesPageQuery, MessagesPageQueryVariables>;
export const HistoryDocument = new TypedDocumentString(`
    query History($conversationId: ID!, $first: Int, $before: String) {
  conversation(id: $conversationId) {
    id
    history(first: $first, before: $before) {
      ...MessagePage
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
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
fragment MessagePage on MessageConnection {
  edges {
    cursor
    node {
      ...MessageFields
    }
  }
  pageInfo {
    ...PageInfoFields
  }
}`) as unknown as TypedDocumentString<HistoryQuery, HistoryQueryVariables>;
export const TimelineDocument = new TypedDocumentString(`
    query Timeline($conversationId: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  conversation(id: $conversationId) {
    id
    timeline(first: $first, after: $after, last: $last, before: $before) {
      ...MessagePage
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
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
fragment MessagePage on MessageConnection {
  edges {
    cursor
    node {
      ...MessageFields
    }
  }
  pageInfo {
    ...PageInfoFields
  }
}`) as unknown as TypedDocumentString<TimelineQuery, TimelineQueryVariables>;
export const HistoryAroundDocument = new TypedDocumentString(`
    query HistoryAround($conversationId: ID!, $seq: Int!, $before: Int, $after: Int) {
  conversation(id: $conversationId) {
    id
    historyAround(seq: $seq, before: $before, after: $after) {
      ...MessageWindowFields
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}
fragment MessageWindowFields on MessageWindow {
  items {
    ...MessageFields
  }
  hasOlder
  hasNewer
  olderCursor
  newerCursor
}`) as unknown as TypedDocumentString<HistoryAroundQuery, HistoryAroundQueryVariables>;
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<MessageAddedSubscription, MessageAddedSubscriptionVariables>;
export const EventsDocument = new TypedDocumentString(`
    query Events($conversationId: ID!, $after: Int, $first: Int) {
  conversation(id: $conversationId) {
    id
    lastEventSeq
    events(after: $after, first: $first) {
      items {
        ...EventFields
      }
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}
fragment EventFields on ConversationEvent {
  __typename
  eventSeq
  conversationId
  at
  actor {
    ...UserFields
  }
  ... on MessageAddedEvent {
    message {
      ...MessageFields
    }
  }
  ... on MessageEditedEvent {
    message {
      ...MessageFields
    }
  }
  ... on MessageDeletedEvent {
    message {
      ...MessageFields
    }
  }
  ... on ReactionChangedEvent {
    message {
      ...MessageFields
    }
    emoji
    added
  }
  ... on MembersAddedEvent {
    users {
      ...UserFields
    }
  }
  ... on MemberRemovedEvent {
    user {
      ...UserFields
    }
  }
  ... on ConversationRenamedEvent {
    title
  }
}`) as unknown as TypedDocumentString<EventsQuery, EventsQueryVariables>;
export const ConversationEventsDocument = new TypedDocumentString(`
    subscription ConversationEvents($conversationId: ID!, $afterEventSeq: Int) {
  conversationEvents(
    conversationId: $conversationId
    afterEventSeq: $afterEventSeq
  ) {
    ...EventFields
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}
fragment EventFields on ConversationEvent {
  __typename
  eventSeq
  conversationId
  at
  actor {
    ...UserFields
  }
  ... on MessageAddedEvent {
    message {
      ...MessageFields
    }
  }
  ... on MessageEditedEvent {
    message {
      ...MessageFields
    }
  }
  ... on MessageDeletedEvent {
    message {
      ...MessageFields
    }
  }
  ... on ReactionChangedEvent {
    message {
      ...MessageFields
    }
    emoji
    added
  }
  ... on MembersAddedEvent {
    users {
      ...UserFields
    }
  }
  ... on MemberRemovedEvent {
    user {
      ...UserFields
    }
  }
  ... on ConversationRenamedEvent {
    title
  }
}`) as unknown as TypedDocumentString<ConversationEventsSubscription, ConversationEventsSubscriptionVariables>;
export const MarkReadDocument = new TypedDocumentString(`
    mutation MarkRead($conversationId: ID!, $seq: Int!) {
  markRead(conversationId: $conversationId, seq: $seq) {
    ...ReadStateFields
  }
}
    fragment ReadStateFields on Conversation {
  id
  unreadCount
  viewerLastReadSeq
}`) as unknown as TypedDocumentString<MarkReadMutation, MarkReadMutationVariables>;
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<SendMessageMutation, SendMessageMutationVariables>;
export const EditMessageDocument = new TypedDocumentString(`
    mutation EditMessage($input: EditMessageInput!) {
  editMessage(input: $input) {
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<EditMessageMutation, EditMessageMutationVariables>;
export const DeleteMessageDocument = new TypedDocumentString(`
    mutation DeleteMessage($id: ID!) {
  deleteMessage(id: $id) {
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<DeleteMessageMutation, DeleteMessageMutationVariables>;
export const AddReactionDocument = new TypedDocumentString(`
    mutation AddReaction($messageId: ID!, $emoji: String!) {
  addReaction(messageId: $messageId, emoji: $emoji) {
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<AddReactionMutation, AddReactionMutationVariables>;
export const RemoveReactionDocument = new TypedDocumentString(`
    mutation RemoveReaction($messageId: ID!, $emoji: String!) {
  removeReaction(messageId: $messageId, emoji: $emoji) {
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<RemoveReactionMutation, RemoveReactionMutationVariables>;
export const SidebarDocument = new TypedDocumentString(`
    query Sidebar($first: Int) {
  conversations(first: $first) {
    edges {
      node {
        id
        title
        unreadCount
        viewerLastReadSeq
        lastMessage {
          ...MessageFields
        }
      }
    }
  }
  unreadTotal
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
  editedAt
  deletedAt
  version
  reactions {
    emoji
    count
    viewerReacted
  }
  sender {
    ...UserFields
  }
}`) as unknown as TypedDocumentString<SidebarQuery, SidebarQueryVariables>;
export const ViewerEventsDocument = new TypedDocumentString(`
    subscription ViewerEvents($after: String) {
  viewerEvents(after: $after) {
    __typename
    position
    ... on ConversationActivityEvent {
      conversation {
        id
        title
        unreadCount
        lastMessage {
          seq
          body
          sender {
            ...UserFields
          }
        }
      }
    }
    ... on ConversationJoinedEvent {
      conversation {
        id
        title
        unreadCount
      }
    }
    ... on ConversationLeftEvent {
      conversationId
    }
    ... on ReadStateChangedEvent {
      conversation {
        ...ReadStateFields
      }
    }
  }
}
    fragment UserFields on User {
  id
  name
}
fragment ReadStateFields on Conversation {
  id
  unreadCount
  viewerLastReadSeq
}`) as unknown as TypedDocumentString<ViewerEventsSubscription, ViewerEventsSubscriptionVariables>;
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
export const UsersDocument = new TypedDocumentString(`
    query Users($search: String, $first: Int, $after: String) {
  users(search: $search, first: $first, after: $after) {
    edges {
      cursor
      node {
        ...UserFields
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
fragment PageInfoFields on PageInfo {
  hasNextPage
  hasPreviousPage
  startCursor
  endCursor
}`) as unknown as TypedDocumentString<UsersQuery, UsersQueryVariables>;