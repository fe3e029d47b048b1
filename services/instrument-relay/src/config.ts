import { z } from 'zod';

/** The `relay` section of cloudlet.yml. */
export const relaySection = z
  .strictObject({
    /** Where session ports listen (browser WebSockets, or OOD's /rnode proxy). */
    listen_host: z.string().min(1).default('127.0.0.1'),
    /** The host name OOD or the browser uses for session ports; defaults to listen_host. */
    public_host: z.string().optional(),
    /** Session ports come from this range; {min: 0, max: 0} means any free port. */
    port_range: z
      .strictObject({ min: z.number().int().min(0).max(65535), max: z.number().int().min(0).max(65535) })
      .refine((r) => r.min <= r.max, 'min must not exceed max')
      .default({ min: 0, max: 0 }),
    /** The session API (loopback only: the portal and the CLI call it). */
    api_host: z.string().min(1).default('127.0.0.1'),
    api_port: z.number().int().min(0).max(65535).default(8091),
    /** Bearer token for trusted callers (the portal); created on first start. */
    api_token_file: z.string().min(1).default('./var/secrets/relay-api.token'),
    /**
     * Where `cloudlet-relay` proves which Unix user runs it: it creates a file named by a
     * one-time nonce, and the relay reads the owner. Sticky and world-writable, like /tmp.
     */
    challenge_dir: z.string().min(1).default('./var/relay/challenges'),
    /** Origins whose pages may open relay WebSockets (the portal, the OOD host). */
    allowed_origins: z.array(z.string().min(1)).default(['http://127.0.0.1:8080']),
    audit_file: z.string().min(1).default('./var/relay/audit.jsonl'),
    session_max_s: z.number().int().min(60).default(4 * 3600),
    /** A connection that sends nothing (not even update requests) this long is closed. */
    idle_timeout_s: z.number().int().min(5).default(30 * 60),
    ping_interval_s: z.number().int().min(1).max(30).default(25),
    max_connections_per_instrument: z.number().int().min(1).default(12),
    /** Bytes queued toward one browser before the relay stops reading its upstream. */
    max_buffered_bytes: z.number().int().min(64 * 1024).default(4 * 1024 * 1024),
    max_message_bytes: z.number().int().min(4096).default(1024 * 1024),
    /** After the instrument rejects the relay's password, wait this long before trying again. */
    upstream_auth_backoff_s: z.number().int().min(1).default(300),
    /** Allow WebSocket clients that send no Origin (non-browser tools); they still need a secret. */
    allow_missing_origin: z.boolean().default(false),
  })
  .prefault({});

export type RelayConfig = z.infer<typeof relaySection>;
