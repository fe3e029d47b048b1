import { z } from 'zod';

const demoIdentity = z.strictObject({
  username: z.string().min(1),
  /** Demo passwords are public by design: the demo provider only listens on loopback. */
  password: z.string().min(1),
  sub: z.string().min(1),
  name: z.string().min(1),
  email: z.string().optional(),
  idp: z.string().default('Cloudlet demo sign-in'),
  eppn: z.string().optional(),
});

const app = z.strictObject({
  id: z.string().regex(/^[a-z0-9-]+$/),
  title: z.string().min(1),
  description: z.string().default(''),
  url: z.string().min(1),
});

/** The `portal` section of cloudlet.yml. */
export const portalSection = z
  .strictObject({
    listen_host: z.string().min(1).default('127.0.0.1'),
    listen_port: z.number().int().min(0).max(65535).default(8080),
    /** How browsers reach the portal; defaults to http://<listen_host>:<port>. */
    public_url: z.url().optional(),
    /** Trust X-Forwarded-* from a proxy in front (only when one is). */
    trust_proxy: z.boolean().default(false),
    session_secret_file: z.string().min(1).default('./var/secrets/portal-session.key'),
    /** Absolute lifetime of a sign-in. */
    session_max_age_s: z.number().int().min(1).default(8 * 3600),
    oidc: z
      .strictObject({
        /** The OpenID provider; empty means the embedded demo provider (dev_idp). */
        issuer: z.union([z.url(), z.literal('')]).default(''),
        client_id: z.string().min(1).default('cloudlet-portal'),
        client_secret_file: z.string().min(1).default('./var/secrets/portal-oidc-client.secret'),
        /** CILogon: add org.cilogon.userinfo for idp and eppn. */
        scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email']),
      })
      .prefault({}),
    dev_idp: z
      .strictObject({
        enabled: z.boolean().default(true),
        identities: z.array(demoIdentity).default([]),
      })
      .prefault({}),
    /** The instrument relay's session API; without it instruments are listed but not opened. */
    relay: z
      .strictObject({
        api_url: z.url(),
        api_token_file: z.string().min(1),
      })
      .optional(),
    /** The session launcher's API (the launcher section); without it the Sessions page says sessions are not enabled. */
    launcher: z
      .strictObject({
        api_url: z.url(),
        api_token_file: z.string().min(1),
      })
      .optional(),
    /** Apps shown on the dashboard. */
    apps: z.array(app).default([]),
  })
  .prefault({});

export type PortalConfig = z.infer<typeof portalSection>;
export type DemoIdentity = PortalConfig['dev_idp']['identities'][number];
