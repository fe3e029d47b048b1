/**
 * The relying party: openid-client 6 (a certified RP) under passport. We use its strategy
 * rather than passport-openidconnect because that one has no PKCE and does not verify the ID
 * token's signature. openid-client's strategy sends PKCE but omits state and nonce when the
 * provider supports PKCE; we add both, so every callback is bound to this browser's session
 * three ways (code_verifier, state, nonce) and the ID token is checked for signature, issuer,
 * audience, expiry and nonce.
 */
import type { Request } from 'express';
import type { Strategy as PassportStrategy } from 'passport';
import { AppError, type Logger } from '@cloudlet/core';

export interface SignedInIdentity {
  iss: string;
  sub: string;
  name?: string | undefined;
  email?: string | undefined;
  idp?: string | undefined;
  eppn?: string | undefined;
}

export interface RelyingPartyOptions {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  scopes: readonly string[];
  /** Plain http is allowed only for a provider on loopback (the embedded one, tests). */
  allowHttp: boolean;
  log: Logger;
}

export interface RelyingParty {
  strategy: PassportStrategy;
  name: string;
}

export async function createRelyingParty(options: RelyingPartyOptions): Promise<RelyingParty> {
  const client = await import('openid-client');
  const { Strategy } = await import('openid-client/passport');

  let config: InstanceType<typeof client.Configuration>;
  try {
    config = await client.discovery(
      new URL(options.issuer),
      options.clientId,
      undefined,
      client.ClientSecretBasic(options.clientSecret),
      options.allowHttp ? { execute: [client.allowInsecureRequests] } : undefined,
    );
  } catch (err) {
    throw new AppError(`OpenID discovery at ${options.issuer} failed: ${(err as Error).message}`, {
      code: 'oidc_unavailable',
      status: 503,
      publicMessage: 'The sign-in service cannot be reached right now. Try again in a minute.',
      cause: err,
    });
  }

  class BoundStrategy extends Strategy {
    override authorizationRequestParams(req: Request, opts: Parameters<InstanceType<typeof Strategy>['authorizationRequestParams']>[1]): URLSearchParams {
      const params = super.authorizationRequestParams(req, opts) as URLSearchParams;
      params.set('state', client.randomState());
      params.set('nonce', client.randomNonce());
      return params;
    }
  }

  const strategy = new BoundStrategy(
    { config, scope: options.scopes.join(' '), callbackURL: options.redirectUri, name: 'oidc', sessionKey: 'oidc' },
    (tokens, done) => {
      const claims = tokens.claims();
      if (!claims || typeof claims.sub !== 'string') {
        done(new AppError('ID token has no subject', { code: 'oidc_no_sub', status: 400 }));
        return;
      }
      const identity: SignedInIdentity = {
        iss: claims.iss,
        sub: claims.sub,
        name: stringClaim(claims.name),
        email: stringClaim(claims.email),
        idp: stringClaim(claims.idp_name) ?? stringClaim(claims.idp),
        eppn: stringClaim(claims.eppn),
      };
      done(null, { identity });
    },
  );

  return {
    strategy: strategy as unknown as PassportStrategy,
    name: 'oidc',
  };
}

function stringClaim(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
