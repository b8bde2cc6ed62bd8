import { DEFAULT_RETRY, deliverWithRetry, type RetryDeps, type RetryPolicy } from './delivery.js';
import { postJson } from './http.js';
import { type Channel, type DeliveryResult, type Notification, stateWord } from './types.js';

export interface SlackConfig {
  name: string;
  /** The incoming webhook URL (`https://hooks.slack.com/services/…`). */
  url: string;
  timeoutMs?: number;
  retry?: RetryPolicy;
}

const EMOJI: Record<Notification['transition'], string> = {
  firing: ':rotating_light:',
  resolved: ':white_check_mark:',
  acknowledged: ':eyes:',
};

/** Slack's mrkdwn needs &, < and > escaped. */
export function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function slackBody(n: Notification): { text: string; blocks: unknown[] } {
  const head = `[${stateWord(n)}] ${n.summary}`;
  const labels = Object.keys(n.labels)
    .sort()
    .map((k) => `\`${slackEscape(k)}=${slackEscape(n.labels[k] ?? '')}\``)
    .join(' ');
  const blocks: unknown[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `${EMOJI[n.transition]} *${slackEscape(head)}*\nseverity: *${n.severity}* · rule: \`${slackEscape(n.ruleId)}\``,
      },
    },
    { type: 'context', elements: [{ type: 'mrkdwn', text: labels || '(no labels)' }] },
  ];
  const buttons: unknown[] = [];
  if (n.ackUrl !== undefined && n.transition === 'firing')
    buttons.push({
      type: 'button',
      text: { type: 'plain_text', text: 'Acknowledge' },
      url: n.ackUrl,
      action_id: 'nines_ack',
      style: 'primary',
    });
  if (n.url !== undefined)
    buttons.push({
      type: 'button',
      text: { type: 'plain_text', text: 'Open in nines' },
      url: n.url,
      action_id: 'nines_open',
    });
  if (buttons.length > 0) blocks.push({ type: 'actions', elements: buttons });
  // `text` is the fallback shown in notifications and by clients without blocks.
  return { text: head, blocks };
}

export function slackChannel(cfg: SlackConfig, deps: RetryDeps = {}): Channel {
  return {
    kind: 'slack',
    name: cfg.name,
    send(n: Notification): Promise<DeliveryResult> {
      const body = JSON.stringify(slackBody(n));
      return deliverWithRetry(
        cfg.name,
        () => postJson(cfg.url, body, { timeoutMs: cfg.timeoutMs ?? 10_000 }),
        cfg.retry ?? DEFAULT_RETRY,
        deps,
      );
    },
  };
}
