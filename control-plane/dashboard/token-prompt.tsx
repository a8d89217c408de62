/** The first page without a token: paste one (viewer is enough to look); shows why the server refused the last. */
import { useState } from 'preact/hooks';

export function TokenPrompt({ error, onToken }: { error: string; onToken: (t: string) => void }) {
  const [value, setValue] = useState('');
  return (
    <div class="token-page">
      <form
        class="token-card"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) onToken(value.trim());
        }}
      >
        <h1>drover</h1>
        <p>Paste an API token to open the dashboard. A viewer token is enough to look; operator or admin can also cancel runs.</p>
        <p class="muted">
          Make one with <code>drover token create --role viewer</code>, or open the link that <code>drover dev</code> prints (it carries
          the token after <code>#token=</code>).
        </p>
        <input
          type="password"
          name="token"
          autoComplete="off"
          placeholder="token"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          autoFocus
        />
        <button type="submit" class="primary">
          Open dashboard
        </button>
        {error && (
          <p class="error" role="alert" data-testid="token-error">
            {error}
          </p>
        )}
      </form>
    </div>
  );
}
