/**
 * Parses a workflow document (YAML or JSON; JSON is YAML) while keeping node
 * positions, so every problem can name its line and column.
 */
import { isMap, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

export type PathSegment = string | number;

export interface ParsedSource {
  value: unknown;
  /** 1-based line and column of the node at `path`, or of its nearest parent. */
  position(path: PathSegment[]): { line: number; column: number };
  syntaxErrors: { message: string; line: number; column: number }[];
}

export function parseSource(text: string): ParsedSource {
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const syntaxErrors = doc.errors.map((e) => {
    const pos = lineCounter.linePos(e.pos[0]);
    return { message: e.message.split('\n')[0], line: pos.line, column: pos.col };
  });
  const position = (path: PathSegment[]) => {
    for (let n = path.length; n >= 0; n--) {
      const node = findNode(doc.contents as Node | null, path.slice(0, n), n < path.length);
      if (node?.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
    return { line: 0, column: 0 };
  };
  return { value: syntaxErrors.length ? undefined : doc.toJS(), position, syntaxErrors };
}

function findNode(root: Node | null, path: PathSegment[], _parent: boolean): Node | null {
  let node: unknown = root;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown })?.value === seg);
      if (!pair) return null;
      // For the last segment point at the key (where a human looks), else descend.
      node = i === path.length - 1 ? pair.key : pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
    } else {
      return null;
    }
  }
  return (node as Node) ?? null;
}

/** Renders a path as `steps[2].needs[0]`. */
export function formatPath(path: PathSegment[]): string {
  return path.reduce<string>(
    (acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg),
    '',
  );
}
