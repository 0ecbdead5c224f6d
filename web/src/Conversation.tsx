// The conversation view: the timeline (relayStylePagination(), paged as it scrolls), live events
// (conversationEvents, resumed from the last eventSeq), read positions (markRead as messages
// scroll into view), typing indicators, and the composer.
import { useApolloClient, useQuery } from '@apollo/client/react';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';

import { isPending, loadAround, loadLatest, pageSize, insertMessage } from './cache';
import type { Me } from './Chat';
import { Composer } from './Composer';
import {
  ConversationDocument,
  ConversationEventsDocument,
  MarkReadDocument,
  TypingDocument,
  type ConversationEventsSubscription,
} from './generated/graphql';
import { subscribeResumable } from './live';
import { MessageItem } from './Message';

type ConversationEvent = ConversationEventsSubscription['conversationEvents'];

export function ConversationView({ id, focusSeq, me }: { id: string; focusSeq: number | null; me: Me }) {
  const client = useApolloClient();
  // The eventSeq of the last event applied: the page's lastEventSeq at first, where the
  // subscription starts, so that nothing between the page and the stream is missed.
  const lastEventSeq = useRef(0);
  const [state, setState] = useState<'loading' | 'ready' | 'missing' | 'failed'>('loading');
  const [announcement, setAnnouncement] = useState('');
  const [typists, setTypists] = useState<ReadonlyMap<string, string>>(new Map());

  useEffect(() => {
    let cancelled = false;
    (focusSeq === null ? loadLatest(client, id) : loadAround(client, id, focusSeq)).then(
      (seq) => {
        if (cancelled) return;
        lastEventSeq.current = seq ?? 0;
        setState(seq === null ? 'missing' : 'ready');
      },
      () => !cancelled && setState('failed'),
    );
    return () => void (cancelled = true);
  }, [client, id, focusSeq]);

  // Live events, applied to the cache. Edits, deletions and reactions carry the message as it
  // is now, which Apollo writes over the cached one: only a new message needs placing, and
  // renames and membership changes a field of the conversation.
  useEffect(() => {
    if (state !== 'ready') return;
    const apply = (ev: ConversationEvent) => {
      const conversation = client.cache.identify({ __typename: 'Conversation', id });
      switch (ev.__typename) {
        case 'MessageAddedEvent':
          insertMessage(client.cache, ev.message);
          if (ev.message.sender.id !== me.id) setAnnouncement(`${ev.message.sender.name}: ${ev.message.body}`);
          break;
        case 'ConversationRenamedEvent':
          client.cache.modify({ id: conversation, fields: { title: () => ev.title } });
          break;
        case 'MembersAddedEvent':
          client.cache.modify({
            id: conversation,
            fields: {
              members: (existing: readonly any[], { readField, toReference }) => [
                ...existing,
                ...ev.users.filter((u) => !existing.some((r) => readField('id', r) === u.id)).map((u) => toReference({ __typename: 'User', id: u.id })),
              ],
            },
          });
          break;
        case 'MemberRemovedEvent':
          if (ev.user.id === me.id) location.hash = '#/';
          client.cache.modify({
            id: conversation,
            fields: { members: (existing: readonly any[], { readField }) => existing.filter((r) => readField('id', r) !== ev.user.id) },
          });
          break;
      }
    };
    return subscribeResumable(client, ConversationEventsDocument, {
      variables: () => ({ id, after: lastEventSeq.current }),
      onData: ({ conversationEvents: ev }) => {
        if (ev.eventSeq <= lastEventSeq.current) return; // seen before a reconnect
        lastEventSeq.current = ev.eventSeq;
        apply(ev);
      },
      onFatal: () => ((location.hash = '#/'), false), // NOT_FOUND: no longer a member
    });
  }, [client, id, me.id, state]);

  // Who is typing: the stream starts with everyone typing now, then each change.
  useEffect(() => {
    if (state !== 'ready') return;
    return subscribeResumable(client, TypingDocument, {
      // Each (re)subscription starts with everyone typing at that moment: forget the rest.
      variables: () => (setTypists(new Map()), { id }),
      onData: ({ typing: { user, typing } }) => {
        if (user.id === me.id) return;
        setTypists((prev) => {
          const next = new Map(prev);
          if (typing) next.set(user.id, user.name);
          else next.delete(user.id);
          return next;
        });
      },
    });
  }, [client, id, me.id, state]);

  if (state === 'missing') return <p role="alert">This conversation does not exist, or you are not a member.</p>;
  if (state === 'failed') return <p role="alert">Could not load the conversation. <a href={location.hash}>Try again</a></p>;
  if (state === 'loading') return <p className="loading">Loading…</p>;
  return (
    <Timeline id={id} focusSeq={focusSeq} me={me} typists={typists} announcement={announcement} />
  );
}

function Timeline(props: { id: string; focusSeq: number | null; me: Me; typists: ReadonlyMap<string, string>; announcement: string }) {
  const { id, focusSeq, me } = props;
  const client = useApolloClient();
  // The cache holds the page loadLatest or loadAround stored, so this reads it; fetchMore goes
  // to the network, and relayStylePagination() merges what it brings.
  const { data, fetchMore } = useQuery(ConversationDocument, { variables: { id }, fetchPolicy: 'cache-first' });
  const conv = data?.conversation;
  const scroller = useRef<HTMLDivElement>(null);
  const top = useRef<HTMLDivElement>(null);
  const bottom = useRef<HTMLDivElement>(null);

  const edges = conv?.timeline.edges ?? [];
  // Newest first in the cache; a pending message is hidden once its confirmed copy is there
  // (an event may bring it before the mutation's answer does).
  const confirmed = new Set(edges.filter((e) => !isPending(e.node)).map((e) => e.node.clientMessageId));
  const messages = edges.map((e) => e.node).filter((m) => !(isPending(m) && confirmed.has(m.clientMessageId)));
  messages.reverse(); // oldest first on screen
  const pageInfo = conv?.timeline.pageInfo;

  // Paging, when a sentinel at either end comes near the viewport.
  const paging = useRef(false);
  const page = useCallback(
    async (older: boolean) => {
      if (paging.current || !pageInfo) return;
      if (older ? !pageInfo.hasNextPage : !pageInfo.hasPreviousPage) return;
      paging.current = true;
      try {
        await fetchMore({
          variables: older
            ? { first: pageSize, after: pageInfo.endCursor, last: null, before: null }
            : { first: null, after: null, last: pageSize, before: pageInfo.startCursor },
        });
      } catch {
        // Scrolling again retries.
      } finally {
        paging.current = false;
      }
    },
    [fetchMore, pageInfo],
  );
  useEffect(() => {
    const io = new IntersectionObserver(
      (entries) => entries.forEach((e) => e.isIntersecting && void page(e.target === top.current)),
      { root: scroller.current, rootMargin: '400px 0px' },
    );
    io.observe(top.current!);
    io.observe(bottom.current!);
    return () => io.disconnect();
  }, [page]);

  // Keep the view still when older messages are added above it, follow new ones at the bottom
  // while the reader is there, and start at the bottom (or at the search hit).
  const snap = useRef({ height: 0, oldest: -1, newest: '', atBottom: true });
  const oldest = messages[0]?.seq ?? -1;
  const newest = messages[messages.length - 1]?.id ?? '';
  useLayoutEffect(() => {
    const el = scroller.current!;
    const s = snap.current;
    if (s.oldest === -1 && oldest !== -1) {
      const hit = focusSeq !== null ? el.querySelector(`[data-seq="${focusSeq}"]`) : null;
      if (hit) hit.scrollIntoView({ block: 'center' });
      else el.scrollTop = el.scrollHeight;
    } else if (oldest !== s.oldest) {
      el.scrollTop += el.scrollHeight - s.height;
    } else if (newest !== s.newest && s.atBottom) {
      el.scrollTop = el.scrollHeight;
    }
    Object.assign(s, { height: el.scrollHeight, oldest, newest, atBottom: el.scrollHeight - el.scrollTop - el.clientHeight < 80 });
  }, [oldest, newest, focusSeq]);
  const onScroll = () => {
    const el = scroller.current!;
    Object.assign(snap.current, { height: el.scrollHeight, atBottom: el.scrollHeight - el.scrollTop - el.clientHeight < 80 });
  };

  // markRead as messages scroll into view: the highest seq seen, at most every 500 ms, never
  // backward. A markRead that failed (the RetryLink's attempts spent, or an error such as
  // SERVICE_UNAVAILABLE) is tried again after 1 s, 2 s, 4 s, … up to 30 s: the messages stay on
  // screen without another sighting, and the sidebar would count them unread until it lands.
  const readSent = useRef(conv?.viewerLastReadSeq ?? 0);
  const seen = useRef(0);
  const readTimer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const readFailures = useRef(0);
  useEffect(() => {
    const flush = () => {
      readTimer.current = undefined;
      const seq = seen.current;
      if (seq <= readSent.current || document.visibilityState !== 'visible') return;
      const before = readSent.current;
      readSent.current = seq;
      client.mutate({ mutation: MarkReadDocument, variables: { conversationId: id, seq } }).then(
        () => void (readFailures.current = 0),
        () => {
          readSent.current = Math.min(readSent.current, before);
          readTimer.current ??= setTimeout(flush, Math.min(1000 * 2 ** readFailures.current++, 30_000));
        },
      );
    };
    const io = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          if (e.isIntersecting) seen.current = Math.max(seen.current, Number((e.target as HTMLElement).dataset['seq']));
        }
        if (seen.current > readSent.current) readTimer.current ??= setTimeout(flush, 500);
      },
      { root: scroller.current, threshold: 0.5 },
    );
    scroller.current!.querySelectorAll('li[data-seq]').forEach((el) => io.observe(el));
    const visible = () => document.visibilityState === 'visible' && flush();
    document.addEventListener('visibilitychange', visible);
    return () => {
      io.disconnect();
      document.removeEventListener('visibilitychange', visible);
    };
  }, [client, id, oldest, newest]);
  useEffect(() => () => clearTimeout(readTimer.current), []);

  if (!conv || !pageInfo) return <p role="alert">This conversation is no longer available.</p>;
  const typing = [...props.typists.values()];
  return (
    <section className="conversation" aria-labelledby="conversation-title" data-conversation-id={id}>
      <header className="conversation-header">
        <a className="back" href="#/" aria-label="Back to conversations">
          ←
        </a>
        <h2 id="conversation-title">{conv.title}</h2>
        <span className="members">
          {conv.members.length} members, {conv.members.filter((m) => m.online).length} online
        </span>
      </header>
      <div className="scroller" ref={scroller} onScroll={onScroll} tabIndex={0} role="region" aria-label="Messages">
        <div ref={top} className="sentinel">
          {pageInfo.hasNextPage ? 'Loading older messages…' : 'The beginning of the conversation.'}
        </div>
        <ol className="messages">
          {messages.map((m) => (
            <MessageItem key={m.id} message={m} mine={m.sender.id === me.id} focused={m.seq === focusSeq} />
          ))}
        </ol>
        <div ref={bottom} className="sentinel">
          {pageInfo.hasPreviousPage ? 'Loading newer messages…' : ''}
        </div>
      </div>
      <p className="typing" aria-live="polite">
        {typing.length === 0 ? '' : typing.length === 1 ? `${typing[0]} is typing…` : `${typing.join(', ')} are typing…`}
      </p>
      <Composer conversationId={id} me={me} atNewest={!pageInfo.hasPreviousPage} />
      <div className="visually-hidden" aria-live="polite">
        {props.announcement}
      </div>
    </section>
  );
}
