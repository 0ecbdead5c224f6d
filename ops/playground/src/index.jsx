// Entry point of the GraphiQL playground bundled into internal/playground/dist.
//
// The page (rendered by the Go package internal/playground) carries its
// configuration in <script type="application/json" id="threadline-config">:
//
//   { "endpoint": "/query", "title": "...", "defaultQuery": "...",
//     "defaultHeaders": "{...}" (absent when there are none), "styleNonce": "..." }
//
// Queries and mutations go over HTTP POST to the endpoint; subscriptions go
// over WebSocket (graphql-transport-ws, via graphql-ws) to the same endpoint.
// The headers typed into GraphiQL's headers editor are sent with every HTTP
// request and, for subscriptions, as the connection_init payload, which is
// where the server reads "Authorization" from.
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { getOperationAST } from 'graphql';
import { createClient } from 'graphql-ws';
import { setNonce } from 'get-nonce';
import 'graphiql/graphiql.css';
import './page.css';

function readConfig() {
  const el = document.getElementById('threadline-config');
  let cfg = {};
  if (el) {
    try {
      cfg = JSON.parse(el.textContent || '{}') || {};
    } catch (err) {
      console.error('threadline-config is not valid JSON', err);
    }
  }
  const str = (v) => (typeof v === 'string' ? v : '');
  return {
    endpoint: str(cfg.endpoint) || '/query',
    title: str(cfg.title),
    defaultQuery: str(cfg.defaultQuery),
    defaultHeaders: str(cfg.defaultHeaders),
    styleNonce: str(cfg.styleNonce),
  };
}

// webSocketURL resolves the endpoint against the page's location and swaps
// the scheme: http -> ws, https -> wss.
function webSocketURL(endpoint, location) {
  const u = new URL(endpoint, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.hash = '';
  return u.toString();
}

function isSubscription(documentAST, operationName) {
  if (!documentAST) return false;
  try {
    const op = getOperationAST(documentAST, operationName || undefined);
    return !!op && op.operation === 'subscription';
  } catch {
    return false;
  }
}

// errorResult turns what graphql-ws rejects with into a GraphQL result:
// a list of GraphQL errors (an "error" message from the server), a
// CloseEvent (the server closed the socket, e.g. 4403 Forbidden when the
// connection_init payload does not authenticate) or a failed connection.
function errorResult(err) {
  if (Array.isArray(err)) return { errors: err };
  let message;
  if (typeof CloseEvent !== 'undefined' && err instanceof CloseEvent) {
    message = `WebSocket closed: ${err.code} ${err.reason || ''}`.trim();
  } else if (typeof Event !== 'undefined' && err instanceof Event) {
    message = 'WebSocket error: could not connect';
  } else {
    message = (err && err.message) || String(err);
  }
  return { errors: [{ message }] };
}

// subscribe runs one subscription on its own lazy graphql-ws client whose
// connection_init payload is the headers of that run. The socket opens with
// the subscription and closes when it ends (or when the user presses stop:
// GraphiQL calls return() on the iterator, which unsubscribes at once).
function subscribe(url, params, headers) {
  const client = createClient({
    url,
    connectionParams: { ...(headers || {}) },
    lazy: true,
    retryAttempts: 0,
  });
  const it = client.iterate(params);
  let finished = false;
  const finish = () => {
    finished = true;
    client.dispose();
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (finished) return { done: true, value: undefined };
      try {
        const r = await it.next();
        if (r.done) finish();
        return r;
      } catch (err) {
        // Show the failure as the subscription's last result, then end.
        finish();
        return { done: false, value: errorResult(err) };
      }
    },
    async return() {
      try {
        if (!finished && it.return) await it.return();
      } finally {
        finish();
      }
      return { done: true, value: undefined };
    },
  };
}

function createFetcher(endpoint) {
  const url = new URL(endpoint, window.location.href).toString();
  const wsURL = webSocketURL(endpoint, window.location);
  const http = createGraphiQLFetcher({ url });
  return (params, opts) => {
    if (isSubscription(opts && opts.documentAST, params.operationName)) {
      return subscribe(wsURL, params, opts && opts.headers);
    }
    return http(params, opts);
  };
}

function main() {
  const cfg = readConfig();
  // The page's Content-Security-Policy has no 'unsafe-inline' for styles.
  // GraphiQL's dialogs and menus (Radix, through react-remove-scroll) add a
  // <style> element while open; react-style-singleton gives it the nonce
  // that get-nonce returns, and the server allows that nonce in style-src.
  if (cfg.styleNonce) setNonce(cfg.styleNonce);
  const root = document.getElementById('graphiql');
  const props = {
    fetcher: createFetcher(cfg.endpoint),
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: 'headers',
    shouldPersistHeaders: false,
  };
  if (cfg.defaultQuery) props.defaultQuery = cfg.defaultQuery;
  if (cfg.defaultHeaders) props.defaultHeaders = cfg.defaultHeaders;
  createRoot(root).render(
    <GraphiQL {...props}>
      <GraphiQL.Logo>{cfg.title || 'GraphiQL'}</GraphiQL.Logo>
    </GraphiQL>,
  );
}

main();
