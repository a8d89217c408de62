/** The fleet filter: `role=assets`, `site=lyon,role`, `!gpu`; every term must hold. */
export type LabelFilter = (labels: Record<string, string>) => boolean;

export function parseLabelFilter(text: string): LabelFilter {
  const terms = text
    .split(/[,\s]+/)
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t): LabelFilter => {
      if (t.startsWith('!')) return (l) => !(t.slice(1) in l);
      const eq = t.indexOf('=');
      if (eq < 0) return (l) => t in l;
      const k = t.slice(0, eq).replace(/!$/, '');
      const v = t.slice(eq + 1);
      return t[eq - 1] === '!' ? (l) => l[k] !== v : (l) => l[k] === v;
    });
  return (labels) => terms.every((f) => f(labels));
}
