// The Threadline web app: sign in, then the sidebar and a conversation.
import { createRoot } from 'react-dom/client';
import { useState } from 'react';

import './app.css';
import { Chat } from './Chat';
import { readConfig, storedToken, storeToken } from './config';
import { SignIn } from './SignIn';

const config = readConfig();

function Root() {
  const [token, setToken] = useState(config.token || storedToken());
  if (!token) {
    return <SignIn config={config} onToken={(t) => (storeToken(t), setToken(t))} />;
  }
  const signOut = () => {
    storeToken('');
    if (config.devSignIn) location.assign(location.pathname); // back to the list of users
    else setToken('');
  };
  return <Chat endpoint={config.endpoint} token={token} onSignOut={signOut} />;
}

createRoot(document.getElementById('root')!).render(<Root />);
