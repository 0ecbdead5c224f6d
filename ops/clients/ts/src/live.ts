// Subscriptions over WebSocket (graphql-transport-ws) with the graphql-ws client, typed by the
// same generated documents as src/client.ts.
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import type { TypedDocumentString } from './generated/graphql.js';
import type { GraphQLErrorItem } from './client.js';

export interface LiveOptions {
  /** The GraphQL endpoint, such as http://localhost:8080/query (ws:// is derived from it). */
  endpoint: string;
  /** A JWT, sent in connection_init as the Authorization value. */
  token: string;
}

/** A graphql-ws client of the endpoint; dispose() it when done. */
export function liveClient(options: LiveOptions): Client {
  return createClient({
    url: options.endpoint.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${options.token}` },
    lazy: false,
  });
}

/**
 * Starts a subscription: onNext receives each result's data, onError the errors that end it
 * (a resume error carries where to resume in extensions: after, afterSeq or afterEventSeq).
 * Returns the function that stops it.
 */
export function subscribe<TResult, TVariables extends Record<string, unknown>>(
  client: Client,
  document: TypedDocumentString<TResult, TVariables>,
  variables: TVariables,
  onNext: (data: TResult) => void,
  onError: (errors: readonly GraphQLErrorItem[]) => void,
): () => void {
  return client.subscribe<TResult>(
    { query: document.toString(), variables },
    {
      next: (result) => {
        if (result.errors && result.errors.length > 0) {
          onError(result.errors as readonly GraphQLErrorItem[]);
        } else if (result.data) {
          onNext(result.data);
        }
      },
      error: (err) => onError([{ message: String(err) }]),
      complete: () => {},
    },
  );
}
