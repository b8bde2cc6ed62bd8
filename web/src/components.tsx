import type { ComponentChildren } from 'preact';
import type { Permission } from './model.js';

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
