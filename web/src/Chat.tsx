// The signed-in app: a header with the app badge, the sidebar, the open conversation, and the
// search and new-conversation dialogs. The open conversation is in the URL's fragment
// (#/c/<id>, or #/c/<id>/m/<seq> for a search hit), so the browser's back button closes it.
import { ApolloProvider, useQuery } from '@apollo/client/react';
import { useEffect, useMemo, useState } from 'react';

import { connect } from './apollo';
import { ConversationView } from './Conversation';
import { NewConversationDialog, SearchDialog } from './Dialogs';
import { ViewerDocument, type ViewerQuery } from './generated/graphql';
import { useConnected } from './live';
import { Sidebar, useUnreadTotal } from './Sidebar';

export type Me = ViewerQuery['me'];

interface Route {
  conversationId: string | null;
  seq: number | null;
}

function parseRoute(hash: string): Route {
  const m = /^#\/c\/([^/]+)(?:\/m\/(\d+))?$/.exec(hash);
  return m ? { conversationId: decodeURIComponent(m[1]!), seq: m[2] ? Number(m[2]) : null } : { conversationId: null, seq: null };
}

function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return useMemo(() => parseRoute(hash), [hash]);
}

export function Chat({ endpoint, token, onSignOut }: { endpoint: string; token: string; onSignOut: () => void }) {
  const connection = useMemo(() => connect(endpoint, token), [endpoint, token]);
  useEffect(() => connection.dispose, [connection]);
  return (
    <ApolloProvider client={connection.client}>
      <Screen connected={useConnected(connection.ws)} onSignOut={onSignOut} />
    </ApolloProvider>
  );
}

function Screen({ connected, onSignOut }: { connected: boolean; onSignOut: () => void }) {
  const route = useRoute();
  const { data, error } = useQuery(ViewerDocument);
  const total = useUnreadTotal();
  const [dialog, setDialog] = useState<'search' | 'new' | null>(null);

  useEffect(() => {
    document.title = total > 0 ? `(${total}) Threadline` : 'Threadline';
  }, [total]);

  if (error) {
    return (
      <main className="sign-in">
        <p role="alert">Could not sign in: {error.message}</p>
        <button onClick={onSignOut}>Sign in again</button>
      </main>
    );
  }
  if (!data) return <p className="loading">Loading…</p>;
  const me = data.me;
  return (
    <div className={route.conversationId ? 'layout open' : 'layout'}>
      <header className="app-header">
        <h1>
          Threadline
          {total > 0 && (
            <span className="badge app-badge" data-testid="unread-total" aria-label={`${total} unread in all`}>
              {total}
            </span>
          )}
        </h1>
        <span className="me">{me.name}</span>
        <button type="button" onClick={() => setDialog('search')}>Search</button>
        <button type="button" onClick={() => setDialog('new')}>New conversation</button>
        <button type="button" onClick={onSignOut}>Sign out</button>
      </header>
      {!connected && (
        <p className="offline" role="status">
          Reconnecting…
        </p>
      )}
      <nav className="sidebar" aria-label="Conversations">
        <Sidebar openId={route.conversationId} />
      </nav>
      <main className="main">
        {route.conversationId ? (
          <ConversationView key={`${route.conversationId}/${route.seq}`} id={route.conversationId} focusSeq={route.seq} me={me} />
        ) : (
          <p className="empty">Pick a conversation.</p>
        )}
      </main>
      {dialog === 'search' && <SearchDialog conversationId={route.conversationId} onClose={() => setDialog(null)} />}
      {dialog === 'new' && <NewConversationDialog me={me} onClose={() => setDialog(null)} />}
    </div>
  );
}
