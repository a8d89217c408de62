import { existsSync } from 'node:fs';

/** Integration tests run the built entry points as real processes. */
export default function setup() {
  for (const f of ['dist/control-plane/main.js', 'dist/agent/main.js', 'dist/sdk/cli/main.js']) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first (npm test does it for you)`);
  }
}
