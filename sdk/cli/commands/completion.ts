import { Argument, type Command } from 'commander';
import { completionScript, SHELLS, type Shell } from '../completion.js';
import { examples } from '../help.js';

/** `drover completion bash|zsh|fish`: the shell completion script. */
export function register(program: Command): void {
  program
    .command('completion')
    .summary('print a shell completion script (bash, zsh, fish)')
    .description('Print the script that makes your shell complete drover\'s commands, subcommands, flags and flag values. It is generated from this drover\'s own commands, so it is never stale; load it as below.')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .addHelpText(
      'after',
      examples(
        'source <(drover completion bash)                                             # bash, this shell',
        'drover completion bash > ~/.local/share/bash-completion/completions/drover   # bash, every shell',
        'source <(drover completion zsh)                                              # zsh, this shell',
        'drover completion zsh > "${fpath[1]}/_drover"                                # zsh, every shell',
        'drover completion fish | source                                              # fish, this shell',
        'drover completion fish > ~/.config/fish/completions/drover.fish              # fish, every shell',
      ),
    )
    .action((shell: Shell, _opts: unknown, cmd: Command) => {
      let root = cmd;
      while (root.parent) root = root.parent;
      process.stdout.write(completionScript(root, shell));
    });
}
