// The sidebar: the viewer's conversations with their unread counts, latest activity first,
// kept current by one viewerEvents subscription over all of them.
import { useApolloClient, useQuery } from '@apollo/client/react';
import { useEffect, useRef } from 'react';

import { addToSidebar, removeFromSidebar, sidebarSize } from './cache';
import { SidebarDocument, UnreadTotalDocument, ViewerEventsDocument, type ConversationRowFragment } from './generated/graphql';
import { subscribeResumable } from './live';

/** The app badge: Query.unreadTotal as the cache has it (the sidebar's query reads it). */
export function useUnreadTotal(): number {
  const { data } = useQuery(UnreadTotalDocument, { fetchPolicy: 'cache-only' });
  return data?.unreadTotal ?? 0;
}

const activity = (c: ConversationRowFragment) => Date.parse(c.lastMessage?.createdAt ?? c.createdAt);

export function Sidebar({ openId }: { openId: string | null }) {
  const client = useApolloClient();
  const { data, error, refetch } = useQuery(SidebarDocument, { variables: { first: sidebarSize } });
  const openRef = useRef(openId);
  openRef.current = openId;

  useEffect(() => {
    let position: string | null = null; // the last event handled: where a new subscription resumes
    let refreshTimer: ReturnType<typeof setTimeout> | undefined;
    // The events carry each conversation's unreadCount but not unreadTotal: ask for it again,
    // at most every 300 ms however many events arrive.
    const refreshTotal = () => {
      refreshTimer ??= setTimeout(() => {
        refreshTimer = undefined;
        client.query({ query: UnreadTotalDocument, fetchPolicy: 'network-only' }).catch(() => {});
      }, 300);
    };
    const stop = subscribeResumable(client, ViewerEventsDocument, {
      variables: () => {
        // A stream without a position starts at the next event, and nothing tells when it has
        // started: read the list again once it surely has, for what happened in between.
        if (position === null) setTimeout(() => void refetch().catch(() => {}), 1000);
        return { after: position };
      },
      onData: ({ viewerEvents: ev }) => {
        position = ev.position;
        switch (ev.__typename) {
          case 'ConversationActivityEvent':
          case 'ConversationJoinedEvent':
            addToSidebar(client.cache, ev.conversation);
            break;
          case 'ConversationLeftEvent':
            removeFromSidebar(client.cache, ev.conversationId);
            if (openRef.current === ev.conversationId) location.hash = '#/';
            break;
          case 'ReadStateChangedEvent':
            break; // the conversation's unreadCount is written to the cache with the event
        }
        refreshTotal();
      },
      // Away too long for the events kept: start over without a position (which reads the
      // list again).
      onFatal: (code) => {
        if (code !== 'POSITION_EXPIRED') return false;
        position = null;
        return true;
      },
    });
    return () => {
      stop();
      clearTimeout(refreshTimer);
    };
  }, [client, refetch]);

  if (error && !data) return <p role="alert">Could not load the conversations: {error.message}</p>;
  if (!data) return <p className="loading">Loading…</p>;
  const rows = data.conversations.edges.map((e) => e.node).sort((a, b) => activity(b) - activity(a));
  return (
    <ul className="conversations">
      {rows.map((c) => (
        <li key={c.id} data-conversation-id={c.id} data-unread={c.unreadCount}>
          <a href={`#/c/${encodeURIComponent(c.id)}`} aria-current={c.id === openId ? 'page' : undefined}>
            <span className="title">{c.title}</span>
            {c.unreadCount > 0 && (
              <span className="badge" aria-label={`${c.unreadCount} unread`}>
                {c.unreadCount}
              </span>
            )}
            <span className="preview">
              {c.lastMessage ? `${c.lastMessage.sender.name}: ${c.lastMessage.deletedAt ? 'message deleted' : c.lastMessage.body}` : 'No messages yet'}
            </span>
          </a>
        </li>
      ))}
    </ul>
  );
}
