// An OpenID Certified provider (npm's oidc-provider 8) for the browser-login tests.
// Started by tests/support/node_idp.py from a copy next to its node_modules; one JSON
// argument: {port, client_id, client_secret, redirect_uri, post_logout_redirect_uri,
// backchannel_logout_uri, access_ttl}. Prints "ready" when listening.
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${cfg.port}`;

const clients = [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: [cfg.redirect_uri],
    post_logout_redirect_uris: [cfg.post_logout_redirect_uri],
    backchannel_logout_uri: cfg.backchannel_logout_uri,
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }];
if (cfg.pk_client_id) {  // a second client that authenticates with private_key_jwt
  clients.push({
    client_id: cfg.pk_client_id,
    redirect_uris: [cfg.pk_redirect_uri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks: cfg.pk_jwks,
  });
}

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true, methods: ['S256'] },
  features: {
    devInteractions: { enabled: true },   // its built-in login and consent pages
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    revocation: { enabled: true },
  },
  claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
  conformIdTokenClaims: false,             // email and name in the ID token too
  findAccount: async (ctx, id) => ({
    accountId: id,
    async claims() { return { sub: id, email: `${id}@example.com`, name: id }; },
  }),
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: { AccessToken: cfg.access_ttl || 3600, IdToken: 3600, RefreshToken: 86400 },
  cookies: { keys: ['test-only-cookie-key-0123456789abcdef'] },
  rotateRefreshToken: true,
});

provider.on('backchannel.error', (ctx, err) => console.error('backchannel.error', err.message));
provider.on('backchannel.success', () => console.log('backchannel.success'));
provider.listen(cfg.port, '127.0.0.1', () => console.log('ready'));
