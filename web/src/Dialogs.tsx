// The search and new-conversation dialogs: native <dialog> elements opened modal, which keep
// the focus inside and close on Escape.
import { useApolloClient, useQuery } from '@apollo/client/react';
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';

import { addToSidebar } from './cache';
import type { Me } from './Chat';
import { CreateConversationDocument, SearchMessagesDocument, UsersDocument } from './generated/graphql';

function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current!;
    d.showModal();
    return () => d.close();
  }, []);
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="dialog-title" onClose={onClose}>
      <header>
        <h2 id="dialog-title">{title}</h2>
        <button type="button" onClick={onClose} aria-label="Close">
          ×
        </button>
      </header>
      {children}
    </dialog>
  );
}

/** The value, once it has stopped changing for ms. */
function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/**
 * A search snippet: the matching words come between ** and **, and the body's own * and \ come
 * escaped as \* and \\, so that ** is only ever a marker. Read it left to right (an escaped
 * character is text, ** toggles a match) and render every part as text (React escapes it), the
 * matches in <mark>: never the server's text as HTML.
 */
export function Snippet({ text }: { text: string }) {
  const parts: string[] = [];
  let part = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && i + 1 < text.length) {
      part += text.charAt(++i);
    } else if (text.startsWith('**', i)) {
      parts.push(part);
      part = '';
      i++;
    } else {
      part += text.charAt(i);
    }
  }
  parts.push(part);
  return <>{parts.map((part, i) => (i % 2 === 1 ? <mark key={i}>{part}</mark> : part))}</>;
}

export function SearchDialog({ conversationId, onClose }: { conversationId: string | null; onClose: () => void }) {
  const [query, setQuery] = useState('');
  const [here, setHere] = useState(conversationId !== null);
  const q = useDebounced(query.trim(), 300);
  const { data, error, loading } = useQuery(SearchMessagesDocument, {
    variables: { query: q, conversationId: here ? conversationId : null, first: 20 },
    skip: q === '',
  });
  const hits = q === '' ? [] : (data?.searchMessages.edges ?? []);
  return (
    <Dialog title="Search messages" onClose={onClose}>
      <form role="search" onSubmit={(e) => e.preventDefault()}>
        <label htmlFor="search-query">Words to find</label>
        <input id="search-query" type="search" value={query} onChange={(e) => setQuery(e.target.value)} autoFocus />
        {conversationId !== null && (
          <label>
            <input type="checkbox" checked={here} onChange={(e) => setHere(e.target.checked)} /> In this conversation only
          </label>
        )}
      </form>
      {error && <p role="alert">Search failed: {error.message}</p>}
      <p role="status" className="visually-hidden">
        {loading ? 'Searching…' : q ? `${hits.length} results` : ''}
      </p>
      <ul className="search-results">
        {hits.map(({ node, snippet }) => (
          <li key={node.id}>
            <a href={`#/c/${encodeURIComponent(node.conversationId)}/m/${node.seq}`} onClick={onClose} data-seq={node.seq}>
              <span className="sender">{node.sender.name}</span> <Snippet text={snippet} />
            </a>
          </li>
        ))}
      </ul>
    </Dialog>
  );
}

export function NewConversationDialog({ me, onClose }: { me: Me; onClose: () => void }) {
  const client = useApolloClient();
  const [title, setTitle] = useState('');
  const [search, setSearch] = useState('');
  const [picked, setPicked] = useState<ReadonlyMap<string, string>>(new Map());
  const [error, setError] = useState('');
  const s = useDebounced(search.trim(), 250);
  const { data } = useQuery(UsersDocument, { variables: { search: s || null, first: 10 } });

  const toggle = (id: string, name: string) =>
    setPicked((prev) => {
      const next = new Map(prev);
      if (next.has(id)) next.delete(id);
      else next.set(id, name);
      return next;
    });
  const create = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const { data } = await client.mutate({
        mutation: CreateConversationDocument,
        variables: { input: { title: title.trim(), memberIds: [...picked.keys()] } },
      });
      if (!data) return;
      // The viewerEvents stream announces it too; the sidebar takes it once.
      addToSidebar(client.cache, data.createConversation);
      onClose();
      location.hash = `#/c/${encodeURIComponent(data.createConversation.id)}`;
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <Dialog title="New conversation" onClose={onClose}>
      <form onSubmit={create}>
        <label htmlFor="new-title">Title</label>
        <input id="new-title" value={title} onChange={(e) => setTitle(e.target.value)} required maxLength={200} autoFocus />
        <label htmlFor="new-search">Add people</label>
        <input id="new-search" type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
        <fieldset>
          <legend>People</legend>
          {data?.users.edges
            .filter(({ node }) => node.id !== me.id)
            .map(({ node }) => (
              <label key={node.id} className="person">
                <input type="checkbox" checked={picked.has(node.id)} onChange={() => toggle(node.id, node.name)} /> {node.name}
                {node.online && <span className="online"> (online)</span>}
              </label>
            ))}
        </fieldset>
        {picked.size > 0 && <p>With {[...picked.values()].join(', ')}</p>}
        {error && <p role="alert">{error}</p>}
        <button type="submit">Create</button>
      </form>
    </Dialog>
  );
}
