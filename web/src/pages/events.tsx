import { useState } from 'preact/hooks';
import { Empty } from '../components.js';
import { clock, eventTone, filterEvents } from '../model.js';
import type { EventRecord } from '../types.js';

const SHOW = 500;

export function EventsPage(props: { events: EventRecord[]; now: number }) {
  const [query, setQuery] = useState('');
  const matching = filterEvents(props.events, query);
  return (
    <>
      <h1>Events</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Filter events
          <input
            id="events-filter"
            type="search"
            value={query}
            placeholder="e.g. deploy failed, hello, host"
            autocomplete="off"
            onInput={(e) => setQuery(e.currentTarget.value)}
          />
        </label>
      </form>
      <p class="muted" aria-live="polite" id="events-count">
        {query
          ? `${matching.length} of ${props.events.length} events match`
          : `${props.events.length} events, newest first`}
        {matching.length > SHOW ? ` (showing the newest ${SHOW})` : ''}
      </p>
      {matching.length === 0 ? <Empty>No events{query ? ' match' : ' yet'}.</Empty> : null}
      <ol class="events">
        {matching.slice(0, SHOW).map((e) => (
          <li key={e.id} class={`tone-${eventTone(e.kind)}`}>
            <time dateTime={new Date(e.at).toISOString()}>{clock(e.at, props.now)}</time>
            <span class="kind">{e.kind}</span>
            <span class="subject">{e.subject}</span>
            <span class="msg">{e.message}</span>
          </li>
        ))}
      </ol>
    </>
  );
}
