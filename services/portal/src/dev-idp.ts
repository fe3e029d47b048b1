/**
 * The embedded demo OpenID provider (npm `oidc-provider`, a certified implementation) that lets
 * `npm start` sign people in with nothing outside. It holds the demo identities from config,
 * asks for a username and password on its own login page, and issues real signed ID tokens
 * with CILogon-shaped claims (idp, eppn). It refuses to run on anything but loopback.
 */
import { generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import express, { type Router } from 'express';
import type { ProviderInstance } from 'oidc-provider';
import { AppError, type Logger, readOrCreateSecretFile } from '@cloudlet/core';
import type { DemoIdentity } from './config';
import type { Views } from './views';

export const DEV_IDP_PATH = '/dev-idp';

export interface DevIdpOptions {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  identities: readonly DemoIdentity[];
  stateDir: string;
  views: Views;
  log: Logger;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function createDevIdp(options: DevIdpOptions): Promise<Router> {
  const { default: Provider } = await import('oidc-provider');
  const byUsername = new Map(options.identities.map((i) => [i.username, i]));
  const bySub = new Map(options.identities.map((i) => [i.sub, i]));

  const provider: ProviderInstance = new Provider(options.issuer, {
    clients: [
      {
        client_id: options.clientId,
        client_secret: options.clientSecret,
        redirect_uris: [options.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingKey(path.join(options.stateDir, 'dev-idp', 'jwks.json'))] },
    cookies: { keys: [readOrCreateSecretFile(path.join(options.stateDir, 'secrets', 'dev-idp-cookie.key'))] },
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email'],
      'org.cilogon.userinfo': ['idp', 'idp_name', 'eppn'],
    },
    // Put the scope claims in the ID token as CILogon does, so the portal needs no userinfo call.
    conformIdTokenClaims: false,
    scopes: ['openid', 'profile', 'email', 'org.cilogon.userinfo'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `${DEV_IDP_PATH}/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, sub: string) => {
      const ident = bySub.get(sub);
      if (!ident) return undefined;
      return {
        accountId: sub,
        claims: () => ({ sub, name: ident.name, email: ident.email, idp: ident.idp, idp_name: ident.idp, eppn: ident.eppn }),
      };
    },
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    renderError: (ctx: { type: string; body: string }, out: { error: string; error_description?: string }) => {
      ctx.type = 'html';
      ctx.body = options.views.render('error', { title: 'Demo sign-in', status: 400, message: `${out.error}: ${out.error_description ?? ''}`, user: undefined });
    },
  });
  provider.on('server_error', (_ctx, err) => options.log.error({ err }, 'demo provider error'));

  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '4kb' });

  router.get('/interaction/:uid', async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      res.type('html').send(options.views.render('dev-idp-login', { uid: details.uid, identities: options.identities, error: undefined, user: undefined, title: 'Demo sign-in' }));
    } catch (err) {
      next(interactionExpired(err));
    }
  });

  router.post('/interaction/:uid/login', form, async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      const body = req.body as Record<string, unknown>;
      const ident = typeof body.username === 'string' ? byUsername.get(body.username) : undefined;
      const password = typeof body.password === 'string' ? body.password : '';
      if (!ident || !samePassword(password, ident.password)) {
        res.status(401).type('html').send(options.views.render('dev-idp-login', { uid: details.uid, identities: options.identities, error: 'Unknown username or wrong password.', user: undefined, title: 'Demo sign-in' }));
        return;
      }
      const grant = new provider.Grant({ accountId: ident.sub, clientId: options.clientId });
      const requested = typeof details.params.scope === 'string' ? details.params.scope : 'openid';
      grant.addOIDCScope(requested);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId: ident.sub }, consent: { grantId } }, { mergeWithLastSubmission: false });
    } catch (err) {
      next(interactionExpired(err));
    }
  });

  router.use(provider.callback());
  return router;
}

function samePassword(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function interactionExpired(err: unknown): unknown {
  const name = (err as { name?: string } | null)?.name;
  if (name === 'SessionNotFound' || name === 'InvalidRequest') {
    return new AppError('demo sign-in interaction expired', { code: 'interaction_expired', status: 400, publicMessage: 'This sign-in attempt has expired. Go back to the portal and sign in again.', cause: err });
  }
  return err;
}

/** One RSA signing key per installation, kept in the state dir (mode 600). */
function signingKey(file: string): Record<string, unknown> {
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `dev-${Date.now().toString(36)}`, use: 'sig', alg: 'RS256' };
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}
