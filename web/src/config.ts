// The page's configuration: a JSON data block that the Go handler (internal/webapp) renders
// into <script type="application/json" id="threadline-app">. Data, not code: the page's
// Content-Security-Policy allows no inline script.

export interface PageConfig {
  /** The GraphQL endpoint: HTTP for queries and mutations, WebSocket for subscriptions. */
  endpoint: string;
  /** Development only: the sign-in screen lists users and signs in as any of them. */
  devSignIn: boolean;
  /** Development only: the demo user's token, for the sign-in screen's list of users. */
  directoryToken: string;
  /** Development only: the token of the user picked on the sign-in screen (/app?as=<id>). */
  token: string;
}

export function readConfig(): PageConfig {
  let raw: Record<string, unknown> = {};
  try {
    raw = JSON.parse(document.getElementById('threadline-app')?.textContent ?? '{}') ?? {};
  } catch {
    // A broken block leaves the defaults: the production sign-in.
  }
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  return {
    endpoint: str(raw['endpoint']) || '/query',
    devSignIn: raw['devSignIn'] === true,
    directoryToken: str(raw['directoryToken']),
    token: str(raw['token']),
  };
}

// In production the page carries no token: the user pastes one (from the deployment's identity
// provider), and it is kept for the tab's life only.
const tokenKey = 'threadline.token';

export function storedToken(): string {
  return sessionStorage.getItem(tokenKey) ?? '';
}

export function storeToken(token: string): void {
  if (token) sessionStorage.setItem(tokenKey, token);
  else sessionStorage.removeItem(tokenKey);
}

/** The WebSocket URL of an HTTP endpoint, resolved against the page: http → ws, https → wss. */
export function webSocketURL(endpoint: string): string {
  const u = new URL(endpoint, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.hash = '';
  return u.toString();
}
