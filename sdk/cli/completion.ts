/**
 * Shell completion scripts generated from the commander program tree: every
 * command and subcommand (and alias), every flag, and the choices of a flag
 * that has them (`-o table|wide|json|yaml`). Generated at run time from the
 * same tree that parses the arguments, so they never go stale.
 */
import type { Command, Option } from 'commander';

/** The shells `drover completion` writes a script for. */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

interface Node {
  /** Command names from the root, e.g. ['workflow', 'list']; [] for the root. */
  path: string[];
  cmd: Command;
}

/** Every command of the tree, once per name it answers to (aliases included). */
function nodes(root: Command): Node[] {
  const out: Node[] = [];
  const walk = (cmd: Command, path: string[]) => {
    out.push({ path, cmd });
    for (const sub of cmd.commands) for (const name of [sub.name(), ...sub.aliases()]) walk(sub, [...path, name]);
  };
  walk(root, []);
  return out;
}

const visible = (cmd: Command): Option[] => {
  const help = (cmd as unknown as { _getHelpOption?: () => Option | null })._getHelpOption?.();
  return [...cmd.options, ...(help ? [help] : [])].filter((o) => !o.hidden);
};
const flags = (cmd: Command) => visible(cmd).flatMap((o) => [o.long, o.short].filter((f): f is string => !!f));
const subs = (cmd: Command) => cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]);
const summary = (cmd: Command) => (cmd.summary() || cmd.description()).split('\n')[0];
const single = (s: string) => s.replace(/'/g, `'\\''`);

/** The completion script for `shell`. */
export function completionScript(program: Command, shell: Shell): string {
  if (shell === 'bash') return bash(program);
  if (shell === 'zsh') return zsh(program);
  return fish(program);
}

function bash(program: Command): string {
  const all = nodes(program);
  const caseOf = (fn: (n: Node) => string) => all.map((n) => `    '${n.path.join(' ')}') echo '${single(fn(n))}' ;;`).join('\n');
  const values = all
    .flatMap((n) => visible(n.cmd).filter((o) => o.argChoices?.length).flatMap((o) => [o.long, o.short].filter(Boolean).map((f) => `    '${n.path.join(' ')}|${f}') echo '${o.argChoices!.join(' ')}' ;;`)))
    .join('\n');
  return `# drover completion for bash. Load it now:   source <(drover completion bash)
# or for every shell:   drover completion bash > ~/.local/share/bash-completion/completions/drover
_drover_subs() {
  case "$1" in
${caseOf((n) => subs(n.cmd).join(' '))}
  esac
}
_drover_flags() {
  case "$1" in
${caseOf((n) => flags(n.cmd).join(' '))}
  esac
}
_drover_values() {
  case "$1|$2" in
${values}
  esac
}
_drover() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    if [[ " $(_drover_subs "$path") " == *" $w "* ]]; then path="\${path:+$path }$w"; fi
  done
  local choices
  choices="$(_drover_values "$path" "$prev")"
  if [[ -n "$choices" ]]; then
    COMPREPLY=($(compgen -W "$choices" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_drover_flags "$path")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_drover_subs "$path")" -- "$cur"))
  fi
}
complete -F _drover drover
`;
}

function zsh(program: Command): string {
  const all = nodes(program);
  const described = (items: [string, string][]) => items.map(([k, d]) => `'${single(`${k.replace(/:/g, '\\:')}:${d.replace(/\n/g, ' ')}`)}'`).join(' ');
  const subCases = all.map((n) => `    '${n.path.join(' ')}') items=(${described(n.cmd.commands.flatMap((c) => [c.name(), ...c.aliases()].map((name): [string, string] => [name, summary(c)])))}) ;;`).join('\n');
  const flagCases = all.map((n) => `    '${n.path.join(' ')}') items=(${described(visible(n.cmd).flatMap((o) => [o.long, o.short].filter((f): f is string => !!f).map((f): [string, string] => [f, o.description])))}) ;;`).join('\n');
  const valueCases = all
    .flatMap((n) => visible(n.cmd).filter((o) => o.argChoices?.length).flatMap((o) => [o.long, o.short].filter(Boolean).map((f) => `    '${n.path.join(' ')}|${f}') items=(${o.argChoices!.map((c) => `'${single(c)}'`).join(' ')}) ;;`)))
    .join('\n');
  return `#compdef drover
# drover completion for zsh. Load it now:   source <(drover completion zsh)
# or for every shell: put it in a directory of your $fpath as _drover, e.g.
#   drover completion zsh > "\${fpath[1]}/_drover"   (then start a new shell)
_drover() {
  # not \$path: in zsh that is \$PATH
  local -a items subs
  local cmdpath="" w i
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    [[ "$w" == -* ]] && continue
    items=()
    case "$cmdpath" in
${subCases}
    esac
    subs=(\${items%%:*})
    if (( \${subs[(Ie)$w]} )); then cmdpath="\${cmdpath:+$cmdpath }$w"; fi
  done
  items=()
  case "$cmdpath|\${words[CURRENT-1]}" in
${valueCases}
  esac
  if (( \${#items} )); then compadd -a items; return; fi
  if [[ "\${words[CURRENT]}" == -* ]]; then
    case "$cmdpath" in
${flagCases}
    esac
    _describe -t options 'drover option' items
  else
    case "$cmdpath" in
${subCases}
    esac
    _describe -t commands 'drover command' items
  fi
}
if [[ "\${funcstack[1]}" == _drover ]]; then _drover "$@"; else compdef _drover drover; fi
`;
}

function fish(program: Command): string {
  const lines = [
    '# drover completion for fish. Load it now:   drover completion fish | source',
    '# or for every shell:   drover completion fish > ~/.config/fish/completions/drover.fish',
    'complete -c drover -f',
  ];
  for (const n of nodes(program)) {
    const seen = n.path.map((p) => `__fish_seen_subcommand_from ${p}`).join('; and ');
    const at = n.path.length === 0 ? '__fish_use_subcommand' : `${seen}; and not __fish_seen_subcommand_from ${subs(n.cmd).join(' ') || '-'}`;
    const subCondition = n.path.length === 0 ? '__fish_use_subcommand' : at;
    for (const c of n.cmd.commands) {
      for (const name of [c.name(), ...c.aliases()]) lines.push(`complete -c drover -n '${single(subCondition)}' -a '${single(name)}' -d '${single(summary(c))}'`);
    }
    const flagCondition = n.path.length === 0 ? '__fish_use_subcommand' : at;
    for (const o of visible(n.cmd)) {
      const parts = [`complete -c drover -n '${single(flagCondition)}'`];
      if (o.long) parts.push(`-l ${o.long.replace(/^--/, '')}`);
      if (o.short) parts.push(`-s ${o.short.replace(/^-/, '')}`);
      if (o.required || o.optional) parts.push(o.argChoices?.length ? `-x -a '${o.argChoices.join(' ')}'` : '-r');
      parts.push(`-d '${single(o.description)}'`);
      lines.push(parts.join(' '));
    }
  }
  return lines.join('\n') + '\n';
}
