// One oidc-provider instance per configured issuer. Two kinds:
//
// * `sign-in` stands in for Amazon Cognito in front of the ALB (`authenticate-oidc`): code flow,
//   client_secret_basic, RS256 ID tokens, a userinfo endpoint; the client is first-party, so
//   there is no consent screen (grants are given on sign-in).
// * `consent` stands in for the demo notes API's authorization server: code flow with PKCE S256
//   required, client_secret_basic (the auth method configured per client), a consent page, a
//   refresh token on every code exchange, and RS256 JWT access tokens in the Cognito format
//   (`token_use`, `client_id`, `scope`, `username`).
//   With `skip_consent_when_granted` (the default) it remembers what each person allowed each
//   client, like GitHub, Google and Cognito: see `RememberedGrants`.
import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual, createHash } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

import { MemoryStore } from './store.mjs';
import { loginPage, consentPage, errorPage } from './pages.mjs';

// Amazon Cognito's paths, so URLs look the same locally and in AWS, and the demo API's default
// JWKS location (`<issuer>/.well-known/jwks.json`) works without configuration.
export const ROUTES = {
  authorization: '/oauth2/authorize',
  token: '/oauth2/token',
  userinfo: '/oauth2/userInfo',
  jwks: '/.well-known/jwks.json',
  revocation: '/oauth2/revoke',
};

const MAX_FORM_BYTES = 16 * 1024;
const OPENID_DESCRIPTION = 'Know who you are (your user id and username)';
const WRONG_CREDENTIALS = 'Wrong username or password';

/** The cookie names of an issuer: distinct per issuer, since browsers do not separate cookies by port. */
export function cookieNames(name) {
  return { session: `idp-${name}-session`, interaction: `idp-${name}-interaction`, resume: `idp-${name}-resume` };
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

// Compare digests so neither the length nor the content of a password leaks through timing.
function sameSecret(a, b) {
  const digest = (s) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

function send(ctx, status, { html, headers }) {
  ctx.status = status;
  ctx.set(headers);
  ctx.body = html;
}

async function readForm(ctx) {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    ctx.throw(415, 'expected a form submission');
  }
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) ctx.throw(413, 'form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export function createProvider(config) {
  const { kind, name, title } = config;
  const store = new MemoryStore();
  const usersBySub = new Map(config.users.map((u) => [u.sub, u]));
  const usersByName = new Map(config.users.map((u) => [u.username, u]));
  const resource = config.resource_server;
  const consentKind = kind === 'consent';
  const remembered = consentKind && config.skip_consent_when_granted ? new RememberedGrants() : undefined;
  const demoHint = `Demo accounts: ${config.users.map((u) => `${u.username} / ${u.password}`).join(', ')}`;

  const clients = config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    client_name: c.client_name ?? c.client_id,
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: c.token_endpoint_auth_method,
    response_types: ['code'],
    grant_types: consentKind ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
  }));

  // Only the methods its clients are registered with, so discovery says exactly what works.
  // oidc-provider treats basic and post as interchangeable once both are enabled; see
  // `onlyRegisteredClientAuth` for the one case this list alone does not refuse.
  const authMethods = [...new Set(config.clients.map((c) => c.token_endpoint_auth_method))];
  const ttl = config.access_token_ttl_s;
  const provider = new Provider(config.issuer, {
    adapter: (model) => store.adapterFor(model),
    clients,
    clientAuthMethods: authMethods,
    responseTypes: ['code'],
    routes: ROUTES,
    jwks: { keys: [signingKey()] },
    cookies: {
      names: cookieNames(name),
      keys: [randomBytes(32).toString('base64url')],
      long: { httpOnly: true, sameSite: 'lax', path: '/' },
      short: { httpOnly: true, sameSite: 'lax', path: '/' },
    },
    // `username` comes with `openid`, like Cognito's userinfo, which always returns it.
    claims: consentKind
      ? { openid: ['sub', 'username'] }
      : { openid: ['sub', 'username'], email: ['email', 'email_verified'], profile: ['name'] },
    scopes: consentKind ? ['openid'] : ['openid', 'email', 'profile'],
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256'],
      userinfoSigningAlgValues: ['RS256'],
      authorizationSigningAlgValues: ['RS256'],
      introspectionSigningAlgValues: ['RS256'],
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      dPoP: { enabled: false },
      revocation: { enabled: true },
      userinfo: { enabled: !consentKind },
      resourceIndicators: consentKind
        ? {
            enabled: true,
            // The AgentCore emulator sends no `resource` parameter: every request is for the API.
            defaultResource: async (_ctx, _client, oneOf) => oneOf ?? resource.identifier,
            useGrantedResource: async () => true,
            getResourceServerInfo: async (_ctx, indicator) => {
              if (indicator !== resource.identifier) throw new errors.InvalidTarget();
              return {
                scope: Object.keys(resource.scopes).join(' '),
                audience: resource.identifier,
                accessTokenTTL: ttl,
                accessTokenFormat: 'jwt',
                jwt: { sign: { alg: 'RS256' } },
              };
            },
          }
        : { enabled: false },
    },
    pkce: { required: () => consentKind },
    findAccount: async (_ctx, sub) => {
      const user = usersBySub.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          username: user.username,
          email: user.email,
          email_verified: user.email_verified,
          name: user.name,
        }),
      };
    },
    extraTokenClaims: async (_ctx, token) => {
      if (!consentKind || token.kind !== 'AccessToken') return undefined;
      return { token_use: 'access', username: usersBySub.get(token.accountId)?.username };
    },
    // Refresh tokens on every code exchange, without offline_access, and not tied to the sign-in
    // session (AgentCore keeps using them after the browser is gone). Not rotated, like Cognito.
    issueRefreshToken: async (_ctx, client) => consentKind && client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => !consentKind,
    rotateRefreshToken: false,
    loadExistingGrant: consentKind ? (ctx) => consentGrant(ctx, remembered) : firstPartyGrant,
    ttl: {
      AccessToken: ttl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 30 * 24 * 3600,
      Interaction: 600,
      Session: 8 * 3600,
      Grant: 30 * 24 * 3600,
    },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError: async (ctx, out) => {
      const message = out.error_description ? `${out.error}: ${out.error_description}` : out.error;
      send(ctx, ctx.status || 400, errorPage({ issuerTitle: title, message }));
    },
  });
  provider.proxy = false;

  provider.use(onlyRegisteredClientAuth(authMethods));
  if (!consentKind) provider.use(cognitoLogout({ provider, config, title, names: cookieNames(name) }));
  provider.use(interactionRoutes({ provider, config, usersByName, usersBySub, demoHint, remembered }));
  provider.on('server_error', (_ctx, error) => {
    process.stderr.write(`${name}: server_error ${error?.stack ?? error}\n`);
  });
  provider.store = store;
  return provider;
}

// Cognito's logout endpoint, as the sign-in issuer's stand-in offers it ("Logout endpoint" in the Cognito
// developer guide): GET /logout?client_id=...&logout_uri=... ends this browser's sign-in session (the
// stored session is destroyed, so a copied cookie no longer works either, and the cookie expires) and
// redirects to logout_uri, which must be one of the client's logout URLs exactly; anything else gets an
// error page and changes nothing. No confirmation page, as at Cognito.
function cognitoLogout({ provider, config, title, names }) {
  return async function logout(ctx, next) {
    if (ctx.path !== '/logout') return next();
    if (ctx.method !== 'GET') {
      ctx.set('Allow', 'GET');
      return send(ctx, 405, errorPage({ issuerTitle: title, message: 'Method not allowed.' }));
    }
    const client = config.clients.find((c) => c.client_id === ctx.query.client_id);
    const target = typeof ctx.query.logout_uri === 'string' ? ctx.query.logout_uri : '';
    if (!client || !client.logout_uris.includes(target)) {
      return send(ctx, 400, errorPage({ issuerTitle: title, message: 'This sign-out link is not registered for the application.' }));
    }
    const session = await provider.Session.get(ctx);
    if (ctx.cookies.get(names.session)) await session.destroy();
    for (const suffix of ['', '.sig']) {
      ctx.cookies.set(names.session + suffix, null, { path: '/', httpOnly: true, sameSite: 'lax', overwrite: true });
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 302;
    ctx.redirect(target);
  };
}

// With client_secret_basic not enabled, oidc-provider ignores a client_secret in the form but
// still accepts an Authorization: Basic header. Refuse it, so a client that authenticates the wrong
// way is caught here rather than in AWS.
function onlyRegisteredClientAuth(authMethods) {
  const endpoints = new Set([ROUTES.token, ROUTES.revocation]);
  return async function clientAuth(ctx, next) {
    if (!authMethods.includes('client_secret_basic') && ctx.method === 'POST' && endpoints.has(ctx.path) && ctx.get('authorization')) {
      ctx.status = 401;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: 'invalid_client', error_description: `client authentication must use ${authMethods.join(' or ')}` };
      return undefined;
    }
    return next();
  };
}

// Sign-in issuer: the ALB's client is first-party, so the requested OpenID scopes are granted
// without a consent screen.
async function firstPartyGrant(ctx) {
  const { client, session, provider } = ctx.oidc;
  const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
  let grant = grantId ? await provider.Grant.find(grantId) : undefined;
  if (!grant || grant.accountId !== session.accountId) {
    grant = new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  }
  grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
  await grant.save();
  return grant;
}

// Consent issuer: which grant the authorization request starts from. oidc-provider's consent checks
// then ask for the page only if this grant lacks an OpenID scope, a claim, or a scope of the API
// (the one resource indicator, `aud`) that the request asks for; `prompt=consent` asks for the page
// whatever the grant holds (OpenID Connect Core 3.1.2.1). Without a session there is no account
// yet, oidc-provider asks for sign-in first and does not call this.
//
// * The grant the person made in this very request (they just pressed Allow) is always the one.
// * With `remembered` (skip_consent_when_granted), so is the grant this account gave this client
//   before, from any browser: if it covers the request, the request completes with a code at once.
// * Otherwise the request starts from an empty grant, so every request shows the consent page.
//
// A grant is only ever saved when the person presses Allow (`grantConsent`); Deny saves nothing.
async function consentGrant(ctx, remembered) {
  const { client, session, provider, result } = ctx.oidc;
  const candidates = [result?.consent?.grantId, remembered?.idFor(session.accountId, client.clientId)];
  for (const grantId of candidates) {
    if (!grantId) continue;
    const grant = await provider.Grant.find(grantId); // undefined once expired or revoked
    if (grant && grant.accountId === session.accountId && grant.clientId === client.clientId) return grant;
  }
  return undefined;
}

/** The grant each account gave each client on the consent page (one per pair; Allow adds to it). */
class RememberedGrants {
  #ids = new Map();

  static #key(accountId, clientId) {
    return JSON.stringify([accountId, clientId]);
  }

  idFor(accountId, clientId) {
    return this.#ids.get(RememberedGrants.#key(accountId, clientId));
  }

  remember(grant) {
    this.#ids.set(RememberedGrants.#key(grant.accountId, grant.clientId), grant.jti);
  }
}

const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|confirm))?$/;

function interactionRoutes({ provider, config, usersByName, usersBySub, demoHint, remembered }) {
  const { title } = config;
  const scopeWords = config.resource_server?.scopes ?? {};

  function describe(scope) {
    return { scope, description: scope === 'openid' ? OPENID_DESCRIPTION : (scopeWords[scope] ?? scope) };
  }

  async function clientName(interaction) {
    const client = await provider.Client.find(String(interaction.params.client_id));
    return client?.clientName ?? String(interaction.params.client_id);
  }

  // What the request asks for that the grant lacks; with `prompt=consent` and nothing lacking,
  // everything it asks for (the person confirms it all again).
  function scopesToShow(interaction) {
    const { details } = interaction.prompt;
    const missing = [
      ...(details.missingOIDCScope ?? []).filter((scope) => scope === 'openid'),
      ...Object.values(details.missingResourceScopes ?? {}).flat(),
    ];
    if (missing.length) return missing.map(describe);
    const requested = String(interaction.params.scope ?? '').split(' ');
    return [...new Set(requested)].filter((scope) => scope === 'openid' || Object.hasOwn(scopeWords, scope)).map(describe);
  }

  // Allow: add what was missing to the grant the request started from (the remembered one, if any)
  // or to a new one, save it, and remember it for this account and client.
  async function grantConsent(interaction) {
    const { prompt: { details }, params, session } = interaction;
    const clientId = String(params.client_id);
    let grant = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
    if (grant && (grant.accountId !== session.accountId || grant.clientId !== clientId)) grant = undefined;
    grant ??= new provider.Grant({ accountId: session.accountId, clientId });
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    await grant.save();
    remembered?.remember(grant);
    return grant.jti;
  }

  async function finish(ctx, result) {
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.redirect(returnTo);
    ctx.status = 303;
    ctx.set('Cache-Control', 'no-store');
  }

  async function showConsent(ctx, interaction) {
    const user = usersBySub.get(interaction.session.accountId);
    send(
      ctx,
      200,
      consentPage({
        issuerTitle: title,
        action: `/interaction/${interaction.uid}/confirm`,
        clientName: await clientName(interaction),
        scopes: scopesToShow(interaction),
        signedInAs: user ? `${user.name} (${user.username})` : interaction.session.accountId,
      }),
    );
  }

  return async function interactions(ctx, next) {
    const match = INTERACTION.exec(ctx.path);
    if (!match) return next();
    const [, uid, action] = match;
    const method = action ? 'POST' : 'GET';
    if (ctx.method !== method) {
      ctx.set('Allow', method);
      return send(ctx, 405, errorPage({ issuerTitle: title, message: 'Method not allowed.' }));
    }

    let interaction;
    try {
      interaction = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (error) {
      if (!(error instanceof errors.SessionNotFound)) throw error;
      interaction = undefined;
    }
    if (!interaction || interaction.uid !== uid) {
      return send(
        ctx,
        400,
        errorPage({
          issuerTitle: title,
          message: 'This sign-in has expired or was started in another browser. Go back to the application and start again.',
        }),
      );
    }
    const prompt = interaction.prompt.name;

    if (!action) {
      if (prompt === 'login') {
        return send(
          ctx,
          200,
          loginPage({ issuerTitle: title, action: `/interaction/${uid}/login`, clientName: await clientName(interaction), demoHint }),
        );
      }
      if (prompt === 'consent' && config.kind === 'consent') return showConsent(ctx, interaction);
      if (prompt === 'consent') return finish(ctx, { consent: { grantId: await grantConsent(interaction) } });
      return send(ctx, 400, errorPage({ issuerTitle: title, message: `Unsupported prompt ${prompt}.` }));
    }

    const form = await readForm(ctx);
    if (action === 'login' && prompt === 'login') {
      const username = form.get('login') ?? '';
      const user = usersByName.get(username);
      // Always compare, so an unknown username costs as much as a wrong password.
      const passwordOk = sameSecret(form.get('password') ?? '', user?.password ?? randomUUID());
      if (!user || !passwordOk) {
        return send(
          ctx,
          200,
          loginPage({
            issuerTitle: title,
            action: `/interaction/${uid}/login`,
            clientName: await clientName(interaction),
            username,
            error: WRONG_CREDENTIALS,
            demoHint,
          }),
        );
      }
      return finish(ctx, { login: { accountId: user.sub } });
    }
    if (action === 'confirm' && prompt === 'consent') {
      const decision = form.get('decision');
      if (decision === 'deny') {
        return finish(ctx, { error: 'access_denied', error_description: 'The user denied the request.' });
      }
      if (decision === 'allow') {
        // The grant id always goes back: `consentGrant` starts the resumed request from it.
        return finish(ctx, { consent: { grantId: await grantConsent(interaction) } });
      }
      return send(ctx, 400, errorPage({ issuerTitle: title, message: 'Choose Allow or Deny.' }));
    }
    return send(ctx, 400, errorPage({ issuerTitle: title, message: 'This step is already done. Go back to the application and start again.' }));
  };
}
