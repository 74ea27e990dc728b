// A real OpenID provider for the sign-on test (tests/it/oidc.rs):
// npm `oidc-provider` (OpenID Certified), configured from the environment.
//
//   PORT            port on 127.0.0.1 (the issuer is http://127.0.0.1:PORT)
//   CLIENT_ID       the workbench's client id; CLIENT_SECRET its secret
//   REDIRECT_URI    the workbench's /anmelden/oidc/rueckkehr
//   POST_LOGOUT_URI the workbench's /anmelden
//   ACCOUNTS        JSON {"login": ["group", ...], ...}: who may sign in
//
// Sign-in uses the provider's own development interactions (a login form
// taking any password for a known login; consent granted for the one
// client). Two test hooks, outside the provider's routes:
//   POST /__test/tamper?mode=audience|expired  the next token response's
//        ID token gets another audience, or an expiry in the past, and is
//        signed again with the provider's own key (so only the workbench's
//        claim checks can catch it);
//   GET  /__test/last-callback  the last redirect to REDIRECT_URI (code and
//        state), for the replay test.
// Prints "listening" on stdout once it serves.

import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.ACCOUNTS);
const redirectUri = process.env.REDIRECT_URI;

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [process.env.POST_LOGOUT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
  // The profile claims in the ID token itself, not only at userinfo.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, groups: accounts[id] };
      },
    };
  },
  // One first-party client: consent is given.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile');
    await grant.save();
    return grant;
  },
});

let tamper = null;
let lastCallback = null;

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/tamper') {
    tamper = ctx.query.mode;
    ctx.body = { tamper };
    return;
  }
  if (ctx.path === '/__test/last-callback') {
    ctx.body = { url: lastCallback };
    return;
  }
  await next();
  const location = ctx.response.get('location');
  if (location && location.startsWith(redirectUri)) {
    lastCallback = location;
  }
  if (ctx.path === '/token' && tamper && ctx.body && ctx.body.id_token) {
    const claims = jose.decodeJwt(ctx.body.id_token);
    const now = Math.floor(Date.now() / 1000);
    if (tamper === 'audience') claims.aud = 'ein-anderer-dienst';
    if (tamper === 'expired') {
      claims.iat = now - 7200;
      claims.exp = now - 3600;
    }
    ctx.body.id_token = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: jwk.kid })
      .sign(privateKey);
    tamper = null;
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log('listening');
});
