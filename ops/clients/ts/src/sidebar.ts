// Example: a chat app's sidebar. It lists the viewer's conversations with their unread counts,
// then keeps them current from one viewerEvents subscription over all of them: a new message
// updates a conversation (and the example marks it read, as an app does for the conversation on
// screen), a conversation joined is added, one left is removed, and reading on another device
// updates the counts. It stops after SIDEBAR_EVENTS events (default 3) and prints the position
// to resume from.
//
//   npm run build && THREADLINE_TOKEN=$(bin/threadline token -user 1) node dist/src/sidebar.js
//
// THREADLINE_URL defaults to http://localhost:8080/query; THREADLINE_AFTER resumes a stream.
import { GraphQLRequestError, ThreadlineClient } from './client.js';
import { ViewerEventsDocument } from './generated/graphql.js';
import { liveClient, subscribe } from './live.js';

interface Row {
  title: string;
  unread: number;
  last: string;
}

async function main(): Promise<void> {
  const endpoint = process.env['THREADLINE_URL'] ?? 'http://localhost:8080/query';
  const token = process.env['THREADLINE_TOKEN'] ?? '';
  const wanted = Number(process.env['SIDEBAR_EVENTS'] ?? '3');
  const client = new ThreadlineClient({ endpoint, token });

  const rows = new Map<string, Row>();
  const first = await client.sidebar(20);
  for (const { node } of first.conversations.edges) {
    rows.set(node.id, { title: node.title, unread: node.unreadCount, last: node.lastMessage?.body ?? '' });
  }
  let total = first.unreadTotal;
  console.log(`${rows.size} conversations, ${total} unread`);
  const show = (id: string) => {
    const r = rows.get(id);
    if (r) console.log(`  ${r.title} (${id}): ${r.unread} unread, last "${r.last}"`);
  };

  const live = liveClient({ endpoint, token });
  let position = process.env['THREADLINE_AFTER'] ?? null;
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    const stop = subscribe(
      live,
      ViewerEventsDocument,
      { after: position },
      (data) => {
        const ev = data.viewerEvents;
        position = ev.position;
        switch (ev.__typename) {
          case 'ConversationActivityEvent': {
            const c = ev.conversation;
            const prev = rows.get(c.id)?.unread ?? 0;
            rows.set(c.id, { title: c.title, unread: c.unreadCount, last: c.lastMessage?.body ?? '' });
            total += c.unreadCount - prev;
            console.log(`activity in ${c.id}`);
            show(c.id);
            // The conversation is on screen: mark what arrived as read.
            if (c.lastMessage) {
              client.markRead(c.id, c.lastMessage.seq).then(
                (r) => console.log(`marked read ${r.id} up to ${r.viewerLastReadSeq}: ${r.unreadCount} unread`),
                reject,
              );
            }
            break;
          }
          case 'ConversationJoinedEvent':
            rows.set(ev.conversation.id, { title: ev.conversation.title, unread: ev.conversation.unreadCount, last: '' });
            total += ev.conversation.unreadCount;
            console.log(`joined ${ev.conversation.id}`);
            show(ev.conversation.id);
            break;
          case 'ConversationLeftEvent':
            total -= rows.get(ev.conversationId)?.unread ?? 0;
            rows.delete(ev.conversationId);
            console.log(`left ${ev.conversationId}`);
            break;
          case 'ReadStateChangedEvent': {
            const row = rows.get(ev.conversation.id);
            if (row) {
              total += ev.conversation.unreadCount - row.unread;
              row.unread = ev.conversation.unreadCount;
            }
            console.log(`read ${ev.conversation.id} up to ${ev.conversation.viewerLastReadSeq}`);
            break;
          }
        }
        console.log(`${total} unread in all`);
        if (++seen === wanted) {
          stop();
          resolve();
        }
      },
      (errors) => reject(new GraphQLRequestError(errors, 0, null)),
    );
    console.log('listening for viewerEvents');
  });
  await live.dispose();
  console.log(`resume after: ${position}`);
}

main().catch((err: unknown) => {
  if (err instanceof GraphQLRequestError) {
    console.error(`GraphQL error (codes ${err.codes.join(', ')}): ${err.message}`);
  } else {
    console.error(err);
  }
  process.exitCode = 1;
});
