/** Where the page keeps its token: the tab's sessionStorage, filled from `#token=` when the URL carries one. */
const KEY = 'drover.token';

/** Takes `#token=…` out of the address (so it is not left in history or screenshots) and keeps it for this tab. */
export function takeTokenFromUrl(): void {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  history.replaceState(null, '', `${location.pathname}${location.search}#/fleet`);
}

export const storedToken = (): string => sessionStorage.getItem(KEY) ?? '';
export const saveToken = (t: string): void => sessionStorage.setItem(KEY, t);
export const forgetToken = (): void => sessionStorage.removeItem(KEY);
