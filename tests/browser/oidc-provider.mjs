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
// client). Test hooks, outside the provider's routes:
//   GET /__test/tamper?mode=M  changes the next token response's ID token:
//        audience  another audience,   expired  an expiry in the past,
//        nonce     another nonce       (each signed again with the
//                  provider's own key, so only the claim checks catch it);
//        foreign-key  signed by another RSA key under the provider's kid;
//        hs256     signed HS256 with the client secret (a token anyone
//                  holding the secret could make);
//        intercept the next redirect to REDIRECT_URI is not sent: kept for
//                  /__test/last-callback, the browser gets a plain page;
//   GET /__test/last-callback  the last redirect to REDIRECT_URI (code and
//        state), for the replay tests, and whether the last logout came
//        with an id_token_hint;
//   GET /__test/groups?login=L&groups=a,b  sets an account's groups.
// Prints "listening" on stdout once it serves.

import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.ACCOUNTS);
const redirectUri = process.env.REDIRECT_URI;

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const foreign = await jose.generateKeyPair('RS256', { extractable: true });
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
  // As Keycloak does: HS256 offered beside RS256 (a client may choose it).
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'HS256'] },
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
let logoutHint = false;

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/tamper') {
    tamper = ctx.query.mode;
    ctx.body = { tamper };
    return;
  }
  if (ctx.path === '/__test/last-callback') {
    ctx.body = { url: lastCallback, logout_hint: logoutHint };
    return;
  }
  if (ctx.path === '/session/end' && ctx.method === 'GET') {
    logoutHint = Boolean(ctx.query.id_token_hint);
  }
  if (ctx.path === '/__test/groups') {
    const groups = String(ctx.query.groups || '');
    accounts[ctx.query.login] = groups ? groups.split(',') : [];
    ctx.body = { groups: accounts[ctx.query.login] };
    return;
  }
  await next();
  const location = ctx.response.get('location');
  if (location && location.startsWith(redirectUri)) {
    lastCallback = location;
    if (tamper === 'intercept') {
      tamper = null;
      ctx.status = 200;
      ctx.remove('location');
      ctx.type = 'text/plain';
      ctx.body = 'intercepted';
    }
  }
  if (ctx.path === '/token' && tamper && ctx.body && ctx.body.id_token) {
    ctx.body.id_token = await tampered(ctx.body.id_token, tamper);
    tamper = null;
  }
});

async function tampered(idToken, mode) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'audience') claims.aud = 'ein-anderer-dienst';
  if (mode === 'nonce') claims.nonce = 'eine-andere-nonce';
  if (mode === 'expired') {
    claims.iat = now - 7200;
    claims.exp = now - 3600;
  }
  if (mode === 'hs256') {
    return new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(process.env.CLIENT_SECRET));
  }
  const key = mode === 'foreign-key' ? foreign.privateKey : privateKey;
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: jwk.kid })
    .sign(key);
}

// A failure inside the provider shows in the test's output.
provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

provider.listen(port, '127.0.0.1', () => {
  console.log('listening');
});
