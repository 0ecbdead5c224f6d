// Conversation.timeline in Apollo Client's cache, the way a chat app pages it: open a
// conversation at a message (historyAround, a permalink), page older messages with
// fetchMore({ after }), send a few, page newer ones with fetchMore({ last, before }), all merged
// into one list by relayStylePagination(). Run by timeline_apollo_test.go against a live server
// (THREADLINE_URL, THREADLINE_TOKEN, THREADLINE_CONVERSATION, THREADLINE_SEQ); it prints the
// cached list's seqs and what it did as JSON, for the test to check.
import { ApolloClient, HttpLink, InMemoryCache, type TypedDocumentNode } from '@apollo/client';
import { relayStylePagination } from '@apollo/client/utilities';
import { parse } from 'graphql';

import {
  HistoryAroundDocument,
  SendMessageDocument,
  TimelineDocument,
  type TimelineQuery,
  type TypedDocumentString,
} from './generated/graphql.js';

/** The same operations the Go client and client.ts send, as the DocumentNodes Apollo takes. */
function documentNode<R, V>(doc: TypedDocumentString<R, V>): TypedDocumentNode<R, V> {
  return parse(doc.toString()) as TypedDocumentNode<R, V>;
}

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const pageSize = 20;
const conversationId = env('THREADLINE_CONVERSATION');

const client = new ApolloClient({
  link: new HttpLink({ uri: env('THREADLINE_URL'), fetch, headers: { Authorization: `Bearer ${env('THREADLINE_TOKEN')}` } }),
  cache: new InMemoryCache({ typePolicies: { Conversation: { fields: { timeline: relayStylePagination() } } } }),
});
const timelineQuery = documentNode(TimelineDocument);

// The permalink: a window around one message, with the cursors to continue from.
const around = await client.query({
  query: documentNode(HistoryAroundDocument),
  variables: { conversationId, seq: Number(env('THREADLINE_SEQ')), before: 10, after: 10 },
});
const window = around.data?.conversation?.historyAround;
if (!window?.olderCursor) throw new Error(`historyAround: ${JSON.stringify(around)}`);

// The timeline from just older than the window, watched as a component would watch it: the
// watcher sees how many edges each result it is given holds.
const watched = client.watchQuery({ query: timelineQuery, variables: { conversationId, first: pageSize, after: window.olderCursor } });
let watchedEdges = 0;
let onResult = (): void => {};
await new Promise<void>((resolve, reject) => {
  watched.subscribe({
    next: (r) => {
      if (r.dataState !== 'complete') return;
      watchedEdges = r.data.conversation?.timeline.edges.length ?? 0;
      onResult();
      resolve();
    },
    error: reject,
  });
});

/** The timeline as the cache holds it now: every page fetched so far, merged. */
function cached(): NonNullable<TimelineQuery['conversation']>['timeline'] {
  const data = client.readQuery({ query: timelineQuery, variables: watched.variables });
  if (!data?.conversation) throw new Error('the timeline is not in the cache');
  return data.conversation.timeline;
}

let olderPages = 0;
while (cached().pageInfo.hasNextPage) {
  await watched.fetchMore({ variables: { first: pageSize, after: cached().pageInfo.endCursor, last: null, before: null } });
  olderPages++;
}

// New messages arrive while the list is open; paging newer finds them.
const sent: number[] = [];
for (const body of ['one', 'two', 'three']) {
  const r = await client.mutate({ mutation: documentNode(SendMessageDocument), variables: { input: { conversationId, body } } });
  if (!r.data) throw new Error(`sendMessage: ${JSON.stringify(r)}`);
  sent.push(r.data.sendMessage.seq);
}

let newerPages = 0;
while (cached().pageInfo.hasPreviousPage) {
  await watched.fetchMore({ variables: { first: null, after: null, last: pageSize, before: cached().pageInfo.startCursor } });
  newerPages++;
}

// Results reach the watcher after fetchMore has resolved: wait (at most 5 s) for the one that
// holds the whole list.
const final = cached();
await new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, 5000);
  onResult = () => {
    if (watchedEdges === final.edges.length) {
      clearTimeout(timer);
      resolve();
    }
  };
  onResult();
});
console.log(
  JSON.stringify({
    seqs: final.edges.map((e) => e.node.seq),
    cursorsMatch: final.edges.every((e) => final.edges.filter((f) => f.cursor === e.cursor).length === 1),
    watchedEdges,
    pageInfo: final.pageInfo,
    window: window.items.map((m) => m.seq),
    olderPages,
    newerPages,
    sent,
  }),
);
client.stop();
