// One message: its body (or tombstone), reactions, and the actions on it.
import { useApolloClient } from '@apollo/client/react';
import { useState, type KeyboardEvent } from 'react';

import { isPending } from './cache';
import {
  AddReactionDocument,
  DeleteMessageDocument,
  EditMessageDocument,
  RemoveReactionDocument,
  type MessageFieldsFragment,
} from './generated/graphql';

const quickReactions = ['👍', '❤️', '😂'];

const time = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export function MessageItem({ message: m, mine, focused }: { message: MessageFieldsFragment; mine: boolean; focused: boolean }) {
  const client = useApolloClient();
  const [editing, setEditing] = useState(false);
  const pending = isPending(m);
  // Each mutation answers the message as it is now, which Apollo writes over the cached one.
  const react = (emoji: string, on: boolean) =>
    client
      .mutate(on ? { mutation: AddReactionDocument, variables: { messageId: m.id, emoji } } : { mutation: RemoveReactionDocument, variables: { messageId: m.id, emoji } })
      .catch(() => {});
  const remove = () => client.mutate({ mutation: DeleteMessageDocument, variables: { id: m.id } }).catch(() => {});

  return (
    <li
      className={['message', mine ? 'mine' : '', focused ? 'focused' : '', pending ? 'pending' : ''].join(' ')}
      data-seq={pending ? undefined : m.seq}
      data-message-id={m.id}
      data-pending={pending || undefined}
      aria-busy={pending || undefined}
    >
      <div className="meta">
        <span className="sender">{m.sender.name}</span> <time dateTime={m.createdAt}>{time(m.createdAt)}</time>
        {m.editedAt && !m.deletedAt && <span className="edited"> (edited)</span>}
        {pending && <span className="status"> Sending…</span>}
      </div>
      {m.deletedAt ? (
        <p className="body deleted">Message deleted</p>
      ) : editing ? (
        <EditForm message={m} onDone={() => setEditing(false)} />
      ) : (
        <p className="body">{m.body}</p>
      )}
      {m.reactions.length > 0 && (
        <div className="reactions" role="group" aria-label="Reactions">
          {m.reactions.map((r) => (
            <button key={r.emoji} type="button" className="reaction" aria-pressed={r.viewerReacted} onClick={() => react(r.emoji, !r.viewerReacted)}>
              {r.emoji} {r.count}
            </button>
          ))}
        </div>
      )}
      {!pending && !m.deletedAt && !editing && (
        <div className="actions" role="group" aria-label="Message actions">
          {quickReactions
            .filter((e) => !m.reactions.some((r) => r.emoji === e && r.viewerReacted))
            .map((e) => (
              <button key={e} type="button" className="react" aria-label={`React with ${e}`} onClick={() => react(e, true)}>
                {e}
              </button>
            ))}
          {mine && (
            <button type="button" className="edit" onClick={() => setEditing(true)}>
              Edit
            </button>
          )}
          {mine && (
            <button type="button" className="delete" onClick={remove}>
              Delete
            </button>
          )}
        </div>
      )}
    </li>
  );
}

function EditForm({ message, onDone }: { message: MessageFieldsFragment; onDone: () => void }) {
  const client = useApolloClient();
  const [body, setBody] = useState(message.body);
  const [error, setError] = useState('');
  const save = () => {
    const text = body.trim();
    if (!text || text === message.body) return onDone();
    client.mutate({ mutation: EditMessageDocument, variables: { input: { id: message.id, body: text } } }).then(onDone, (e: Error) => setError(e.message));
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      save();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      onDone();
    }
  };
  return (
    <div className="edit-form">
      <label className="visually-hidden" htmlFor={`edit-${message.id}`}>
        Edit message
      </label>
      <textarea id={`edit-${message.id}`} value={body} onChange={(e) => setBody(e.target.value)} onKeyDown={onKeyDown} autoFocus rows={2} />
      {error && <p role="alert">{error}</p>}
      <button type="button" onClick={save}>Save</button>
      <button type="button" onClick={onDone}>Cancel</button>
    </div>
  );
}
