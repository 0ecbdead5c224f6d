// What the app writes to Apollo's cache by hand. Everything else arrives normalized: an event's
// or a mutation's Message or Conversation, written under its id, updates every list showing it.
import type { ApolloCache, ApolloClient } from '@apollo/client';

import {
  ConversationDocument,
  HistoryAroundDocument,
  SidebarDocument,
  type ConversationRowFragment,
  type MessageFieldsFragment,
} from './generated/graphql';

export const pageSize = 30;
export const sidebarSize = 50;

/**
 * Puts a message into its conversation's timeline (newest first) in seq order, unless it is there
 * already (an event may bring a message that a page or the sender's own mutation brought first)
 * or the timeline does not reach the newest end (paging newer will bring it). Seq order, not
 * arrival order: a message sent after a reconnect may be answered before the events it missed
 * are replayed. Pending messages (seq 0) stay at the newest end.
 */
export function insertMessage(cache: ApolloCache, message: MessageFieldsFragment): void {
  cache.modify({
    id: cache.identify({ __typename: 'Conversation', id: message.conversationId }),
    fields: {
      timeline(existing: any, { readField, toReference }) {
        if (!existing || existing.pageInfo?.hasPreviousPage) return existing;
        const edges: any[] = existing.edges;
        if (edges.some((e) => readField('id', e.node) === message.id)) return existing;
        const seqOf = (e: any) => (readField<string>('id', e.node)!.startsWith('pending:') ? Infinity : readField<number>('seq', e.node)!);
        const seq = isPending(message) ? Infinity : message.seq;
        let at = edges.findIndex((e) => seqOf(e) < seq);
        if (at < 0) {
          if (existing.pageInfo?.hasNextPage) return existing; // older than what is loaded
          at = edges.length;
        }
        const node = toReference({ __typename: 'Message', id: message.id });
        // Events carry no cursor: relayStylePagination() pages from pageInfo's cursors.
        return { ...existing, edges: [...edges.slice(0, at), { __typename: 'MessageEdge', cursor: '', node }, ...edges.slice(at)] };
      },
    },
  });
}

/** Loads the newest page of a conversation into the cache, replacing the timeline there. */
export async function loadLatest(client: ApolloClient, id: string): Promise<number | null> {
  const { data } = await client.query({ query: ConversationDocument, variables: { id, first: pageSize }, fetchPolicy: 'network-only' });
  return data?.conversation?.lastEventSeq ?? null;
}

/**
 * Loads the window around one message (historyAround) and stores it as the conversation's
 * timeline, so that relayStylePagination() pages on from it both ways: older from olderCursor
 * (timeline(first, after)), newer from newerCursor (timeline(last, before)). A window has no
 * per-message cursors; its ends are the only ones paging needs.
 */
export async function loadAround(client: ApolloClient, id: string, seq: number): Promise<number | null> {
  const { data } = await client.query({ query: HistoryAroundDocument, variables: { id, seq }, fetchPolicy: 'network-only' });
  const c = data?.conversation;
  if (!c) return null;
  const w = c.historyAround;
  const last = w.items.length - 1;
  const edges = w.items.map((node, i) => ({
    __typename: 'MessageEdge' as const,
    cursor: (i === last ? w.olderCursor : i === 0 ? w.newerCursor : null) ?? '',
    node,
  }));
  const { historyAround: _, ...header } = c;
  client.writeQuery({
    query: ConversationDocument,
    variables: { id },
    data: {
      conversation: {
        ...header,
        timeline: {
          __typename: 'MessageConnection',
          edges,
          pageInfo: {
            __typename: 'PageInfo',
            hasNextPage: w.hasOlder,
            hasPreviousPage: w.hasNewer,
            startCursor: w.newerCursor,
            endCursor: w.olderCursor,
          },
        },
      },
    },
  });
  return c.lastEventSeq;
}

/** Puts a conversation in the sidebar's list if it is not there (the list sorts itself). */
export function addToSidebar(cache: ApolloCache, conversation: ConversationRowFragment): void {
  cache.updateQuery({ query: SidebarDocument, variables: { first: sidebarSize } }, (data) => {
    if (!data || data.conversations.edges.some((e) => e.node.id === conversation.id)) return data;
    const edge = { __typename: 'ConversationEdge' as const, node: conversation };
    return { ...data, conversations: { ...data.conversations, edges: [edge, ...data.conversations.edges] } };
  });
}

export function removeFromSidebar(cache: ApolloCache, id: string): void {
  cache.updateQuery({ query: SidebarDocument, variables: { first: sidebarSize } }, (data) => {
    if (!data) return data;
    return { ...data, conversations: { ...data.conversations, edges: data.conversations.edges.filter((e) => e.node.id !== id) } };
  });
}

/** 128 random bits in hex: a clientMessageId, made once per message (crypto.randomUUID needs a
 * secure context; this does not). */
export function newClientMessageId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export const isPending = (m: { id: string }): boolean => m.id.startsWith('pending:');
