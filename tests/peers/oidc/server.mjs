// A certified OpenID provider (panva/node-oidc-provider) for oO's sign-in tests.
//
// Loopback only. One confidential client for oO (client_secret_basic, PKCE
// S256 required), RS256 ID tokens signed by a key made at start (served on the
// JWKS endpoint), the provider's development login form (any login, any
// password; the login becomes the subject) and no consent screen for oO.
//
// Environment: OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS
// (comma-separated). Prints "ready <issuer>" on stdout once listening.
//
// One test-only control, to make a fault the real provider would make only
// with a bad clock: POST /__test__/expire-next-id-token signs the next ID
// token with a clock an hour behind, so it is already expired when it leaves.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.OIDC_CLIENT_ID;
const clientSecret = process.env.OIDC_CLIENT_SECRET;
const redirectUris = (process.env.OIDC_REDIRECT_URIS || '').split(',').filter(Boolean);
if (!port || !clientId || !clientSecret || redirectUris.length === 0) {
  console.error('OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and OIDC_REDIRECT_URIS are required');
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `oo-test-${Date.now()}`, use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [clientSecret + '-cookies'] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: true } },
  // Like Google, put the requested profile claims in the ID token itself.
  conformIdTokenClaims: false,
  ttl: { IdToken: 300, AuthorizationCode: 60, AccessToken: 300, Session: 3600, Interaction: 600, Grant: 3600 },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: `Person ${id}` };
      },
    };
  },
  // First-party client: sign-in only, no consent screen.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});

let expireNext = false;
const issue = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function issueMaybeExpired(...args) {
  if (!expireNext) return issue.apply(this, args);
  expireNext = false;
  const realNow = Date.now;
  Date.now = () => realNow() - 3600 * 1000;
  try {
    return await issue.apply(this, args);
  } finally {
    Date.now = realNow;
  }
};

provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/__test__/expire-next-id-token') {
    expireNext = true;
    ctx.status = 204;
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
