// Example: follow a conversation live over Server-Sent Events with the graphql-sse client
// (distinct connections mode: one event stream per subscription), and resume it exactly after
// a disconnect with afterSeq.
//
//   npm run build && THREADLINE_TOKEN=$(bin/threadline token -user 1) node dist/src/sse.js 1 5 5
//
// Arguments: the conversation id; how many messages to receive before disconnecting (default
// 5); how many to receive after resuming (default 5). Between the two it waits for a line on
// stdin (press Enter): whatever is sent meanwhile arrives once the stream is back, each message
// once, in seq order. THREADLINE_URL defaults to http://localhost:8080/query.
import { createInterface } from 'node:readline';

import { createClient, type Client } from 'graphql-sse';

import {
  MessageAddedDocument,
  type MessageAddedSubscription,
  type MessageAddedSubscriptionVariables,
} from './generated/graphql.js';

/**
 * Receives n messages of the conversation after afterSeq (null: from now on), printing each,
 * then ends the subscription; resolves with the last seq received. A stream the server ends
 * with an error (a subscriber cut off for falling behind: RATE_LIMITED with afterSeq) rejects.
 */
function follow(client: Client, conversationId: string, afterSeq: number | null, n: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    let last = afterSeq;
    let received = 0;
    const variables: MessageAddedSubscriptionVariables = { conversationId, afterSeq };
    const dispose = client.subscribe<MessageAddedSubscription>(
      { query: MessageAddedDocument.toString(), variables },
      {
        next(result) {
          if (result.errors && result.errors.length > 0) {
            dispose();
            reject(new Error(result.errors.map((e) => `${e.message} (${String(e.extensions?.['code'])})`).join('; ')));
            return;
          }
          const m = result.data?.messageAdded;
          if (!m) return;
          last = m.seq;
          console.log(`seq ${m.seq} ${m.sender.name}: ${m.body}`);
          if (++received === n) {
            dispose(); // closes the stream: the server ends the subscription
            resolve(last);
          }
        },
        error: reject,
        complete: () => resolve(last),
      },
    );
  });
}

async function main(): Promise<void> {
  const [conversationId, count = '5', then = '5'] = process.argv.slice(2);
  if (!conversationId) throw new Error('usage: sse.js CONVERSATION_ID [COUNT] [THEN]');
  const token = process.env['THREADLINE_TOKEN'];
  const client = createClient({
    url: process.env['THREADLINE_URL'] ?? 'http://localhost:8080/query',
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    // No silent retries: graphql-sse would resend the same request, afterSeq and all. A stream
    // that drops is resumed as below, after the last seq received.
    retryAttempts: 0,
  });
  try {
    const last = await follow(client, conversationId, null, Number(count));
    console.log(`disconnected after seq ${last}`);
    const stdin = createInterface({ input: process.stdin });
    await stdin[Symbol.asyncIterator]().next();
    stdin.close();
    console.log(`resuming after seq ${last}`);
    await follow(client, conversationId, last, Number(then));
  } finally {
    client.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
