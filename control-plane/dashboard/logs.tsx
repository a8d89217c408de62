/** The selected step's log lines, live: stderr marked, kept scrolled to the end unless the reader scrolls up. */
import { useLayoutEffect, useRef } from 'preact/hooks';
import { clock } from './format.js';
import type { LogLine } from './messages.js';

export function LogView({ lines, showStep, now, empty }: { lines: LogLine[]; showStep: boolean; now: number; empty: string }) {
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <div
      class="logs"
      ref={box}
      data-testid="logs"
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      {lines.length === 0 ? (
        <p class="muted logs-empty">{empty}</p>
      ) : (
        lines.map((l, i) => {
          const err = l.stream === 'LOG_STREAM_STDERR';
          return (
            <div key={i} class={err ? 'log-line stderr' : 'log-line'} data-stream={err ? 'stderr' : 'stdout'}>
              <span class="log-time">{clock(l.atMs, now)}</span>
              <span class="log-stream">{err ? 'err' : 'out'}</span>
              {showStep && <span class="log-step">{l.stepId}</span>}
              <span class="log-text">{l.text}</span>
            </div>
          );
        })
      )}
    </div>
  );
}
