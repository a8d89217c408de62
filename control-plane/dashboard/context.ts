/** What every page reads: the state rebuilt from the feed, and the feed to subscribe or send on. */
import { createContext } from 'preact';
import { useContext, useEffect } from 'preact/hooks';
import type { Feed } from './feed.js';
import type { Subscription } from './messages.js';
import type { State } from './store.js';

export interface AppContext {
  state: State;
  feed: Feed;
}

export const App = createContext<AppContext | null>(null);

export function useApp(): AppContext {
  const ctx = useContext(App);
  if (!ctx) throw new Error('useApp outside <App.Provider>');
  return ctx;
}

/** Subscribes while the component is shown (and to the new value when `sub` changes). */
export function useSubscription(sub: Subscription | null): void {
  const { feed } = useApp();
  const key = JSON.stringify(sub);
  useEffect(() => {
    if (!sub) return;
    feed.subscribe(sub);
    return () => feed.unsubscribe(sub.topic);
  }, [feed, key]);
}
