// The composer: Enter sends (Shift+Enter is a new line), typing indicators while typing.
import { useApolloClient } from '@apollo/client/react';
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

import { newClientMessageId, insertMessage } from './cache';
import type { Me } from './Chat';
import { SendMessageDocument, SetTypingDocument } from './generated/graphql';

// setTyping lasts 6 s on the server and costs 10 requests of the rate limit (50/s): repeat it
// every 2.5 s while keys are pressed, no more.
const typingEvery = 2500;

export function Composer({ conversationId, me, atNewest }: { conversationId: string; me: Me; atNewest: boolean }) {
  const client = useApolloClient();
  const [body, setBody] = useState('');
  const [error, setError] = useState('');
  const typingSince = useRef(0); // when setTyping(true) was last sent; 0: not typing

  const setTyping = (typing: boolean) => {
    typingSince.current = typing ? Date.now() : 0;
    client.mutate({ mutation: SetTypingDocument, variables: { id: conversationId, typing } }).catch(() => {});
  };
  useEffect(() => () => void (typingSince.current && setTyping(false)), [conversationId]);

  const onChange = (text: string) => {
    setBody(text);
    if (text.trim() && Date.now() - typingSince.current > typingEvery) setTyping(true);
    else if (!text.trim() && typingSince.current) setTyping(false);
  };

  const send = (e?: FormEvent) => {
    e?.preventDefault();
    const text = body.trim();
    if (!text) return;
    setBody('');
    setError('');
    if (typingSince.current) setTyping(false);
    // A message in the middle of history (a search hit) goes to the newest end first.
    if (!atNewest) location.hash = `#/c/${encodeURIComponent(conversationId)}`;
    // The clientMessageId is made once, here: RetryLink sends the same variables again after a
    // network error, so a message is stored once however often it is sent. Until the server
    // answers, the optimistic response shows it as pending.
    const clientMessageId = newClientMessageId();
    client
      .mutate({
        mutation: SendMessageDocument,
        variables: { input: { conversationId, body: text, clientMessageId } },
        optimisticResponse: {
          sendMessage: {
            __typename: 'Message',
            id: `pending:${clientMessageId}`,
            seq: 0,
            conversationId,
            body: text,
            createdAt: new Date().toISOString(),
            editedAt: null,
            deletedAt: null,
            version: 0,
            clientMessageId,
            sender: { __typename: 'User', id: me.id, name: me.name },
            reactions: [],
          },
        },
        update: (cache, { data }) => data && insertMessage(cache, data.sendMessage),
      })
      .catch((err: Error) => {
        // Refused (not a network error, which RetryLink retries): give the text back.
        setError(`Not sent: ${err.message}`);
        setBody((b) => b || text);
      });
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) send(e);
  };

  return (
    <form className="composer" onSubmit={send}>
      <label className="visually-hidden" htmlFor="composer">
        Message
      </label>
      <textarea
        id="composer"
        rows={1}
        placeholder="Message"
        value={body}
        onChange={(e) => onChange(e.target.value)}
        onKeyDown={onKeyDown}
        onBlur={() => typingSince.current && setTyping(false)}
      />
      <button type="submit">Send</button>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
