/** POSIX shell quoting for the commands the installer sends to hosts. */

/** `value` as one single-quoted sh word: `it's` becomes `'it'\''s'`. Plain words stay bare. */
export function quote(value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A command line of quoted words. */
export function argv(...words: string[]): string {
  return words.map(quote).join(' ');
}
