// Reading and checking the stand-in's JSON configuration. Every problem is reported as a
// ConfigError naming the offending key (for example `issuers[1].clients[0].redirect_uris`), so the
// launcher can print one line and exit 2.
import { readFileSync } from 'node:fs';

export class ConfigError extends Error {
  constructor(key, message) {
    super(`${key}: ${message}`);
    this.key = key;
  }
}

export const KINDS = new Set(['sign-in', 'consent']);
const AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post']);
const NAME = /^[a-z][a-z0-9-]{0,30}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function string(obj, key, path, { pattern, optional = false } = {}) {
  const value = obj[key];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) {
    throw new ConfigError(`${path}.${key}`, 'must be a non-empty string');
  }
  if (pattern && !pattern.test(value)) {
    throw new ConfigError(`${path}.${key}`, `must match ${pattern}`);
  }
  return value;
}

function integer(obj, key, path, { min, max, fallback }) {
  const value = obj[key] ?? fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${path}.${key}`, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

function list(obj, key, path, { min = 1 } = {}) {
  const value = obj[key];
  if (!Array.isArray(value) || value.length < min) {
    throw new ConfigError(`${path}.${key}`, `must be a list with at least ${min} item(s)`);
  }
  return value;
}

function httpUrl(value, key) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(key, 'must be an absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(key, 'must be an http or https URL');
  }
  if (url.hash) throw new ConfigError(key, 'must not have a fragment');
  return url;
}

function checkClient(raw, path) {
  if (!isObject(raw)) throw new ConfigError(path, 'must be an object');
  const redirectUris = list(raw, 'redirect_uris', path).map((uri, i) => {
    const key = `${path}.redirect_uris[${i}]`;
    if (typeof uri !== 'string') throw new ConfigError(key, 'must be a string');
    httpUrl(uri, key);
    return uri;
  });
  const logoutUris = (raw.logout_uris === undefined ? [] : list(raw, 'logout_uris', path)).map((uri, i) => {
    const key = `${path}.logout_uris[${i}]`;
    if (typeof uri !== 'string') throw new ConfigError(key, 'must be a string');
    httpUrl(uri, key);
    return uri;
  });
  const method = string(raw, 'token_endpoint_auth_method', path);
  if (!AUTH_METHODS.has(method)) {
    throw new ConfigError(`${path}.token_endpoint_auth_method`, `must be one of ${[...AUTH_METHODS].join(', ')}`);
  }
  return {
    client_id: string(raw, 'client_id', path),
    client_secret: string(raw, 'client_secret', path),
    client_name: string(raw, 'client_name', path, { optional: true }),
    redirect_uris: redirectUris,
    logout_uris: logoutUris,
    token_endpoint_auth_method: method,
  };
}

function checkUser(raw, path) {
  if (!isObject(raw)) throw new ConfigError(path, 'must be an object');
  if (typeof raw.email_verified !== 'boolean') {
    throw new ConfigError(`${path}.email_verified`, 'must be true or false');
  }
  return {
    username: string(raw, 'username', path),
    password: string(raw, 'password', path),
    sub: string(raw, 'sub', path, { pattern: UUID }),
    email: string(raw, 'email', path),
    email_verified: raw.email_verified,
    name: string(raw, 'name', path),
  };
}

function checkResourceServer(raw, path) {
  if (!isObject(raw)) throw new ConfigError(path, 'must be an object with identifier and scopes');
  const identifier = string(raw, 'identifier', path);
  if (!URL.canParse(identifier) || identifier.includes('#')) {
    throw new ConfigError(`${path}.identifier`, 'must be an absolute URI without a fragment');
  }
  if (!isObject(raw.scopes) || Object.keys(raw.scopes).length === 0) {
    throw new ConfigError(`${path}.scopes`, 'must map each scope to a description in plain words');
  }
  for (const [scope, description] of Object.entries(raw.scopes)) {
    if (!SCOPE.test(scope) || scope === 'openid') throw new ConfigError(`${path}.scopes`, `invalid scope ${JSON.stringify(scope)}`);
    if (typeof description !== 'string' || !description) {
      throw new ConfigError(`${path}.scopes.${scope}`, 'must be a non-empty description');
    }
  }
  return { identifier, scopes: { ...raw.scopes } };
}

function checkIssuer(raw, path) {
  if (!isObject(raw)) throw new ConfigError(path, 'must be an object');
  const name = string(raw, 'name', path, { pattern: NAME });
  const kind = string(raw, 'kind', path);
  if (!KINDS.has(kind)) throw new ConfigError(`${path}.kind`, `must be one of ${[...KINDS].join(', ')}`);
  const issuer = string(raw, 'issuer', path);
  const url = httpUrl(issuer, `${path}.issuer`);
  if (url.search || url.pathname !== '/' || issuer.endsWith('/')) {
    throw new ConfigError(`${path}.issuer`, 'must be scheme://host:port with no path, query or trailing slash');
  }
  const port = integer(raw, 'port', path, { min: 1, max: 65535 });
  const clients = list(raw, 'clients', path).map((c, i) => checkClient(c, `${path}.clients[${i}]`));
  const seen = new Set();
  clients.forEach((c, i) => {
    if (seen.has(c.client_id)) throw new ConfigError(`${path}.clients[${i}].client_id`, 'is a duplicate');
    seen.add(c.client_id);
  });
  const users = list(raw, 'users', path).map((u, i) => checkUser(u, `${path}.users[${i}]`));
  const usernames = new Set();
  const subs = new Set();
  users.forEach((u, i) => {
    if (usernames.has(u.username)) throw new ConfigError(`${path}.users[${i}].username`, 'is a duplicate');
    if (subs.has(u.sub)) throw new ConfigError(`${path}.users[${i}].sub`, 'is a duplicate');
    usernames.add(u.username);
    subs.add(u.sub);
  });
  const resourceServer = kind === 'consent' ? checkResourceServer(raw.resource_server, `${path}.resource_server`) : undefined;
  // Consent issuers only: whether a grant the person already gave this client (every scope now
  // requested) completes the authorization without the consent page. Sign-in issuers never show one.
  const skipConsent = raw.skip_consent_when_granted;
  if (skipConsent !== undefined && kind !== 'consent') {
    throw new ConfigError(`${path}.skip_consent_when_granted`, 'applies to consent issuers only');
  }
  if (skipConsent !== undefined && typeof skipConsent !== 'boolean') {
    throw new ConfigError(`${path}.skip_consent_when_granted`, 'must be true or false');
  }
  return {
    name,
    kind,
    title: string(raw, 'title', path, { optional: true }) ?? name,
    issuer,
    host: string(raw, 'host', path),
    port,
    access_token_ttl_s: integer(raw, 'access_token_ttl_s', path, { min: 1, max: 86400, fallback: 3600 }),
    clients,
    users,
    resource_server: resourceServer,
    skip_consent_when_granted: kind === 'consent' && (skipConsent ?? true),
  };
}

/** Parse and check a configuration object; returns `{ issuers: [...] }` with defaults applied. */
export function checkConfig(raw) {
  if (!isObject(raw)) throw new ConfigError('(root)', 'must be a JSON object');
  if (!Array.isArray(raw.issuers) || raw.issuers.length === 0) throw new ConfigError('issuers', 'must be a list with at least 1 issuer');
  const issuers = raw.issuers.map((issuer, i) => checkIssuer(issuer, `issuers[${i}]`));
  const names = new Set();
  const addresses = new Set();
  const urls = new Set();
  issuers.forEach((issuer, i) => {
    if (names.has(issuer.name)) throw new ConfigError(`issuers[${i}].name`, 'is a duplicate (cookie names derive from it)');
    if (addresses.has(`${issuer.host}:${issuer.port}`)) throw new ConfigError(`issuers[${i}].port`, 'is already used by another issuer');
    if (urls.has(issuer.issuer)) throw new ConfigError(`issuers[${i}].issuer`, 'is a duplicate');
    names.add(issuer.name);
    addresses.add(`${issuer.host}:${issuer.port}`);
    urls.add(issuer.issuer);
  });
  return { issuers };
}

export function loadConfig(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError('--config', `cannot read ${path}: ${error.code ?? error.message}`);
  }
  let raw;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError('--config', `${path} is not JSON: ${error.message}`);
  }
  return checkConfig(raw);
}
