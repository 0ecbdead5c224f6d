// Subscriptions that survive a dropped connection: each remembers the position of the last
// event it handled (a viewerEvents position, a conversationEvents eventSeq) and, when its stream
// ends for any reason but a refusal, subscribes again from there, so that nothing is missed and
// nothing is handled twice.
import type { ApolloClient, OperationVariables, TypedDocumentNode } from '@apollo/client';
import { CombinedGraphQLErrors } from '@apollo/client/errors';
import { useEffect, useState } from 'react';
import type { Client } from 'graphql-ws';

export interface ResumableOptions<TData, TVariables> {
  /** The variables to subscribe with, read again at every (re)subscription: the last position. */
  variables: () => TVariables;
  onData: (data: TData) => void;
  /** A refusal that resubscribing from the same position cannot cure (NOT_FOUND,
   * POSITION_EXPIRED, …): the stream stops, unless onFatal returns true (it has reset the
   * position that variables() returns). */
  onFatal?: (code: string) => boolean;
}

// Codes after which the same subscription, from the same position, is worth trying again.
const transient = new Set(['RATE_LIMITED', 'SERVICE_UNAVAILABLE', 'INTERNAL_SERVER_ERROR', 'UNAUTHENTICATED']);

/** Subscribes now, and again after each end with backoff (at once when the browser comes back
 * online); returns the function that stops it. */
export function subscribeResumable<TData, TVariables extends OperationVariables>(
  client: ApolloClient,
  query: TypedDocumentNode<TData, TVariables>,
  opts: ResumableOptions<TData, TVariables>,
): () => void {
  let stopped = false;
  let generation = 0; // callbacks of an earlier subscription are ignored
  let failures = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let current: { unsubscribe(): void } | undefined;

  const start = () => {
    timer = undefined;
    const gen = ++generation;
    current = client.subscribe({ query, variables: opts.variables() }).subscribe({
      next: (result) => {
        if (gen !== generation) return;
        if (result.error) return ended(gen, result.error);
        if (result.data) {
          failures = 0;
          opts.onData(result.data as TData);
        }
      },
      error: (err: unknown) => ended(gen, err),
      complete: () => ended(gen, undefined),
    });
  };
  const ended = (gen: number, err: unknown) => {
    if (gen !== generation || stopped) return;
    generation++;
    current?.unsubscribe();
    const code = CombinedGraphQLErrors.is(err) ? String(err.errors[0]?.extensions?.['code'] ?? '') : '';
    if (code && !transient.has(code) && !opts.onFatal?.(code)) return;
    const delay = Math.min(250 * 2 ** failures++, 5000) * (0.5 + Math.random() / 2);
    timer = setTimeout(start, delay);
  };
  const online = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      start();
    }
  };
  addEventListener('online', online);
  start();
  return () => {
    stopped = true;
    generation++;
    clearTimeout(timer);
    removeEventListener('online', online);
    current?.unsubscribe();
  };
}

/** Whether the WebSocket is connected: for the "reconnecting" notice. */
export function useConnected(ws: Client): boolean {
  const [connected, setConnected] = useState(true);
  useEffect(() => {
    const offs = [ws.on('connected', () => setConnected(true)), ws.on('closed', () => setConnected(false))];
    return () => offs.forEach((off) => off());
  }, [ws]);
  return connected;
}
