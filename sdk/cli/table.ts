import { stripVTControlCharacters } from 'node:util';
import { eastAsianWidth } from 'get-east-asian-width';

/** Columns are separated by this many spaces, as kubectl does. */
const GAP = 3;

/** Marks that combine with the character before them, and zero-width characters: no column of their own. */
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}]/u;

/** The columns `text` takes on a terminal: escape codes take none, East Asian wide characters two. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const char of stripVTControlCharacters(text)) {
    const code = char.codePointAt(0)!;
    if (code < 0x20 || (code >= 0x7f && code < 0xa0) || ZERO_WIDTH.test(char)) continue;
    width += code < 0x1100 ? 1 : eastAsianWidth(code);
  }
  return width;
}

/**
 * A kubectl-style table: upper-case header, aligned columns, no borders, no
 * trailing spaces. Ends with a newline. Cells may hold colour codes; they
 * are not counted in a column's width.
 */
export function renderTable(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const lines = [head.map(String), ...rows.map((row) => row.map(String))];
  const widths = head.map((_, i) => Math.max(...lines.map((cells) => displayWidth(cells[i] ?? ''))));
  return lines
    .map((cells) =>
      cells
        .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i] - displayWidth(cell) + GAP)))
        .join('')
        .trimEnd(),
    )
    .join('\n') + '\n';
}
