/** The dashboard's entry: reads the token, opens the feed, and draws the page for the current route. */
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { App } from './context.js';
import { Feed, feedUrl, type LinkState } from './feed.js';
import { FleetPage } from './fleet.js';
import { MetricsPage } from './metrics.js';
import { RunPage } from './run-page.js';
import { RunsPage } from './runs.js';
import { href, useRoute, type Route } from './route.js';
import { apply, initialState, type State } from './store.js';
import { TokenPrompt } from './token-prompt.js';
import { forgetToken, saveToken, storedToken, takeTokenFromUrl } from './token.js';
import './app.css';

function Nav({ route, state }: { route: Route; state: State }) {
  const item = (page: Route['page'], label: string, target: Route) => (
    <a class={route.page === page || (page === 'runs' && route.page === 'run') ? 'nav-item active' : 'nav-item'} href={href(target)}>
      {label}
    </a>
  );
  return (
    <header class="top">
      <span class="brand">drover</span>
      <nav>
        {item('fleet', 'Fleet', { page: 'fleet' })}
        {item('runs', 'Runs', { page: 'runs' })}
        {item('metrics', 'Metrics', { page: 'metrics' })}
      </nav>
      <span class="whoami" data-testid="whoami">
        {state.role ? `${state.name || 'token'} · ${state.role}` : ''}
      </span>
    </header>
  );
}

function Dashboard({ token, onRefused }: { token: string; onRefused: (why: string) => void }) {
  const [state, setState] = useState<State>(initialState);
  const [link, setLink] = useState<LinkState>('connecting');
  const route = useRoute();
  const feed = useMemo(
    () =>
      new Feed(feedUrl(location), token, {
        message: (m) => setState((s) => apply(s, m)),
        link: (l, detail) => {
          setLink(l);
          if (l === 'refused') onRefused(detail ?? 'refused');
        },
      }),
    [token],
  );
  useEffect(() => {
    feed.start();
    return () => feed.stop();
  }, [feed]);

  const page =
    route.page === 'fleet' ? <FleetPage /> : route.page === 'runs' ? <RunsPage /> : route.page === 'run' ? <RunPage id={route.id} /> : <MetricsPage />;
  return (
    <App.Provider value={{ state, feed }}>
      <Nav route={route} state={state} />
      {link === 'reconnecting' && (
        <div class="banner" role="status" data-testid="reconnecting">
          Connection to the control plane lost: reconnecting…
        </div>
      )}
      {state.notice && (
        <div class="notice" role="alert">
          <strong>{state.notice.code}</strong> {state.notice.message}
          {state.notice.hint && <span class="hint"> {state.notice.hint}</span>}
          <button class="link" onClick={() => setState((s) => ({ ...s, notice: null }))}>
            dismiss
          </button>
        </div>
      )}
      <main class={link === 'reconnecting' ? 'stale' : ''}>{link === 'connecting' && !state.role ? <p class="empty">Connecting to the control plane…</p> : page}</main>
    </App.Provider>
  );
}

function Root() {
  const [token, setToken] = useState(storedToken);
  const [refused, setRefused] = useState('');
  if (!token)
    return (
      <TokenPrompt
        error={refused}
        onToken={(t) => {
          saveToken(t);
          setRefused('');
          setToken(t);
        }}
      />
    );
  return (
    <Dashboard
      key={token}
      token={token}
      onRefused={(why) => {
        forgetToken();
        setRefused(why);
        setToken('');
      }}
    />
  );
}

takeTokenFromUrl();
render(<Root />, document.getElementById('app')!);
