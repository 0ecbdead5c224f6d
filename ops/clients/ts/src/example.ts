// Example: list the viewer's latest conversations with their newest messages, then page back
// through the first one's history and send a message to it.
//
//   npm run build && THREADLINE_TOKEN=$(bin/threadline token -user 1) node dist/src/example.js
//
// THREADLINE_URL defaults to http://localhost:8080/query.
import { GraphQLRequestError, ThreadlineClient } from './client.js';

async function main(): Promise<void> {
  const client = new ThreadlineClient({
    endpoint: process.env['THREADLINE_URL'] ?? 'http://localhost:8080/query',
    token: process.env['THREADLINE_TOKEN'] ?? '',
  });

  const me = await client.viewer();
  console.log(`signed in as ${me.name} (user ${me.id})`);

  const latest = await client.latestConversations(3, 3);
  for (const { node } of latest.edges) {
    console.log(`# ${node.title} (${node.id})`);
    for (const m of node.messages.items) {
      console.log(`  ${String(m.seq).padStart(4)} ${m.sender.name}: ${m.body}`);
    }
  }

  const first = latest.edges[0]?.node;
  if (!first) return;
  let cursor: string | null = null;
  for (let page = 0; page < 2; page++) {
    const history = await client.history(first.id, 5, cursor);
    if (!history) break;
    console.log(`history page ${page + 1}: seq ${history.edges.map((e) => e.node.seq).join(', ')}`);
    if (!history.pageInfo.hasNextPage) break;
    cursor = history.pageInfo.endCursor;
  }

  const sent = await client.sendMessage({
    conversationId: first.id,
    body: 'hello from the TypeScript example',
    clientMessageId: `ts-example-${Date.now()}`,
  });
  console.log(`sent message ${sent.id} with seq ${sent.seq}`);

  // Messages change: an edit, and a reaction (the counts are the same for everyone;
  // viewerReacted is the viewer's own).
  const edited = await client.editMessage(sent.id, 'hello again, edited');
  console.log(`edited message ${edited.id}: "${edited.body}" (version ${edited.version}, edited at ${edited.editedAt})`);
  const reacted = await client.addReaction(sent.id, '👍');
  for (const r of reacted.reactions) {
    console.log(`reaction ${r.emoji} x${r.count}${r.viewerReacted ? ' (yours)' : ''}`);
  }

  // What happened meanwhile, for a client that was away: the events after a known eventSeq.
  const events = await client.events(first.id, Math.max(0, (await client.conversation(first.id))!.lastEventSeq - 3));
  for (const ev of events?.items ?? []) {
    console.log(`event ${ev.eventSeq}: ${ev.__typename} by ${ev.actor.name}`);
  }
}

main().catch((err: unknown) => {
  if (err instanceof GraphQLRequestError) {
    console.error(`GraphQL error (HTTP ${err.status}, codes ${err.codes.join(', ')}): ${err.message}`);
  } else {
    console.error(err);
  }
  process.exitCode = 1;
});
