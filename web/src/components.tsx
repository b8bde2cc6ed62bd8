import type { ComponentChildren } from 'preact';
import { type Permission, sparkPath } from './model.js';

export function VersionChip(props: { version: string; slot: number | undefined; suffix?: string }) {
  return (
    <span class={`chip vc-${props.slot ?? 7}`} data-version={props.version}>
      {props.version}
      {props.suffix ? <span class="chip-suffix"> {props.suffix}</span> : null}
    </span>
  );
}

/**
 * A button that may be refused by the caller's role: disabled, with the reason as tooltip (on the
 * wrapper too, since a disabled button gets no pointer events) and as its accessible description.
 */
export function ActionButton(props: {
  perm: Permission;
  busy?: boolean;
  onClick?: () => void;
  type?: 'button' | 'submit';
  id: string;
  children: ComponentChildren;
  kind?: 'primary' | 'danger';
}) {
  const disabled = !props.perm.ok || props.busy === true;
  const reasonId = `${props.id}-why`;
  return (
    <span class="action" title={props.perm.ok ? undefined : props.perm.reason}>
      <button
        id={props.id}
        type={props.type ?? 'button'}
        class={`btn ${props.kind ?? 'primary'}`}
        disabled={disabled}
        title={props.perm.ok ? undefined : props.perm.reason}
        aria-describedby={props.perm.ok ? undefined : reasonId}
        onClick={props.onClick}
      >
        {props.busy ? 'Working…' : props.children}
      </button>
      {props.perm.ok ? null : (
        <span id={reasonId} class="sr-only">
          {props.perm.reason}
        </span>
      )}
    </span>
  );
}

export function ErrorNote(props: { error: string | null }) {
  if (!props.error) return null;
  return (
    <p class="note bad" role="alert">
      {props.error}
    </p>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <p class="empty">{props.children}</p>;
}

/**
 * A small line chart of one series, hand-drawn SVG. The picture is decorative for screen readers
 * (aria-hidden); `label` and the latest value are said in text next to it.
 */
export function Sparkline(props: {
  id: string;
  label: string;
  points: ReadonlyArray<{ at: number; value: number | null }>;
  format: (v: number) => string;
  floor?: number;
  tone?: 'info' | 'bad';
}) {
  const W = 160;
  const H = 36;
  const { d, max, last: dot, dots } = sparkPath(props.points, W, H, props.floor ?? 0);
  const last = [...props.points].reverse().find((p) => p.value !== null)?.value ?? null;
  return (
    <figure class="spark" id={props.id} data-points={props.points.length}>
      <figcaption>
        <span class="spark-label">{props.label}</span>{' '}
        <span class="spark-value">{last === null ? 'no data' : props.format(last)}</span>
      </figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        width={W}
        height={H}
        aria-hidden="true"
        focusable="false"
        preserveAspectRatio="none"
      >
        <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} class="spark-axis" />
        {d ? <path d={d} class={`spark-line spark-${props.tone ?? 'info'}`} /> : null}
        {dots.map((p) => (
          <circle
            key={`${p.x}`}
            cx={p.x}
            cy={Math.max(p.y, 1.5)}
            r="1.5"
            class={`spark-dot spark-${props.tone ?? 'info'}`}
          />
        ))}
        {dot ? (
          <circle
            cx={Math.min(dot.x, W - 2.5)}
            cy={Math.min(Math.max(dot.y, 2.5), H - 2.5)}
            r="2.5"
            class={`spark-dot spark-${props.tone ?? 'info'}`}
          />
        ) : null}
      </svg>
      <span class="spark-max muted">max {props.format(max)}</span>
    </figure>
  );
}
