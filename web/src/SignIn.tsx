// Signing in. In development the page carries the demo user's token: the screen lists users
// with it, and each is a link to /app?as=<id>, whose page carries that user's token (signed by
// the server with the development secret, as GraphiQL's is). In production there is no such
// thing: a deployment signs users in through its identity provider and hands the app a token;
// here it is pasted.
import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client';
import { ApolloProvider, useQuery } from '@apollo/client/react';
import { useMemo, useState, type FormEvent } from 'react';

import type { PageConfig } from './config';
import { UsersDocument } from './generated/graphql';

export function SignIn({ config, onToken }: { config: PageConfig; onToken: (token: string) => void }) {
  return (
    <main className="sign-in" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">Threadline</h1>
      {config.devSignIn && config.directoryToken ? (
        <DevSignIn endpoint={config.endpoint} token={config.directoryToken} />
      ) : (
        <TokenSignIn onToken={onToken} />
      )}
    </main>
  );
}

function DevSignIn({ endpoint, token }: { endpoint: string; token: string }) {
  const client = useMemo(
    () => new ApolloClient({ link: new HttpLink({ uri: endpoint, headers: { Authorization: `Bearer ${token}` } }), cache: new InMemoryCache() }),
    [endpoint, token],
  );
  return (
    <ApolloProvider client={client}>
      <UserList />
    </ApolloProvider>
  );
}

function UserList() {
  const { data, error } = useQuery(UsersDocument, { variables: { first: 40 } });
  return (
    <section aria-labelledby="dev-users">
      <h2 id="dev-users">Sign in as (development)</h2>
      {error && <p role="alert">Could not list users: {error.message}</p>}
      <ul className="users">
        {data?.users.edges.map(({ node }) => (
          <li key={node.id}>
            <a href={`?as=${encodeURIComponent(node.id)}`} data-user-id={node.id}>
              {node.name}
            </a>
          </li>
        ))}
      </ul>
    </section>
  );
}

function TokenSignIn({ onToken }: { onToken: (token: string) => void }) {
  const [token, setToken] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (token.trim()) onToken(token.trim());
  };
  return (
    <form onSubmit={submit}>
      <p>Sign in with a token from your identity provider (kept for this tab only).</p>
      <label htmlFor="token">Token</label>
      <textarea id="token" rows={4} value={token} onChange={(e) => setToken(e.target.value)} required />
      <button type="submit">Sign in</button>
    </form>
  );
}
