// The Apollo Client of the app: queries and mutations over HTTP, subscriptions over WebSocket
// (graphql-ws), one normalized cache.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { RetryLink } from '@apollo/client/link/retry';
import { relayStylePagination } from '@apollo/client/utilities';
import { OperationTypeNode } from 'graphql';
import { createClient, type Client } from 'graphql-ws';

import { webSocketURL } from './config';

export interface Connection {
  client: ApolloClient;
  /** The WebSocket client: useConnected follows its state. */
  ws: Client;
  /** Closes the WebSocket and stops the client (signing out). */
  dispose(): void;
}

export function connect(endpoint: string, token: string): Connection {
  const ws = createClient({
    url: webSocketURL(endpoint),
    // The server reads the token from connection_init.
    connectionParams: { Authorization: `Bearer ${token}` },
    // graphql-ws would resubscribe with each subscription's first variables, replaying from
    // where it started: live.ts resubscribes itself, from the last position it received.
    retryAttempts: 0,
    // A ping every 10 s finds a connection that died without a close.
    keepAlive: 10_000,
  });
  // A browser that goes offline may keep a dead socket open for minutes: drop it at once, so
  // that the subscriptions fail and resume when the network is back.
  const offline = () => ws.terminate();
  addEventListener('offline', offline);

  const http = new HttpLink({ uri: endpoint, headers: { Authorization: `Bearer ${token}` } });
  // A network error (offline, a 503 while the server is at capacity, a 429) is retried with
  // backoff. sendMessage is retried until it goes through: its clientMessageId is in the
  // variables, so every retry is the same request and the server stores the message once;
  // meanwhile its optimistic response shows it as pending. Others are tried at most 3 times.
  const retry = new RetryLink({
    delay: { initial: 300, max: 3000, jitter: true },
    attempts: (count, operation, error) => {
      if (!isNetworkError(error)) return false;
      return operation.operationName === 'SendMessage' || count < 3;
    },
  });
  const link = ApolloLink.split(
    (op) => op.operationType === OperationTypeNode.SUBSCRIPTION,
    new GraphQLWsLink(ws),
    ApolloLink.from([retry, http]),
  );

  const cache = new InMemoryCache({
    typePolicies: {
      Conversation: {
        fields: {
          // One list per conversation, however it was paged (first/after toward older
          // messages, last/before toward newer ones), merged by cursor.
          timeline: relayStylePagination(),
        },
      },
    },
  });
  const client = new ApolloClient({ link, cache });
  const dispose = () => {
    removeEventListener('offline', offline);
    client.stop();
    void ws.dispose();
  };
  return { client, ws, dispose };
}

/** A failed fetch or an HTTP status that says "try again": not a GraphQL error. */
function isNetworkError(error: unknown): boolean {
  if (error instanceof TypeError) return true; // fetch: offline, connection refused
  const status = (error as { statusCode?: number } | null)?.statusCode;
  return status === 429 || status === 502 || status === 503 || status === 504;
}
